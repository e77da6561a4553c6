#include "stages/receive/tls.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/log.h"

namespace cefd::receive {
namespace {

constexpr int events_max = 64;
constexpr unsigned accepts_per_pass_max = 256;
// SSL_reads per connection per pass: up to 16 x 16 KB records, then the others get a turn.
constexpr unsigned reads_per_event_max = 16;
constexpr std::int64_t paused_retry_ns = 1'000'000;  // how soon a paused connection retries

/// OpenSSL's error queue as one line ("error:0A000086:SSL routines::certificate verify
/// failed"), then cleared. The queue is per thread and only this thread's calls fill it.
std::string openssl_errors() {
    std::string out;
    // Bounded: OpenSSL queues at most 16 errors per thread.
    for (unsigned long code = ERR_get_error(); code != 0; code = ERR_get_error()) {
        char text[256];
        ERR_error_string_n(code, text, sizeof text);
        if (!out.empty()) out += "; ";
        out += text;
    }
    return out;
}

Error tls_error(const std::string& what) {
    std::string reason = openssl_errors();
    return Error{Errc::config, "receive: " + what + (reason.empty() ? "" : ": " + reason)};
}

/// Why SSL_accept failed, for the log line: OpenSSL's reason, the certificate verdict when there
/// is one, or what the socket said.
std::string handshake_failure_reason(SSL* ssl, int ssl_error, int saved_errno) {
    std::string reason = openssl_errors();
    const long verdict = SSL_get_verify_result(ssl);
    if (verdict != X509_V_OK)
        reason += std::string(reason.empty() ? "" : " ") + "(client certificate: " +
                  X509_verify_cert_error_string(verdict) + ")";
    if (!reason.empty()) return reason;
    if (ssl_error == SSL_ERROR_SYSCALL)
        return saved_errno != 0 ? std::strerror(saved_errno)
                                : "the peer closed the connection during the handshake";
    if (ssl_error == SSL_ERROR_ZERO_RETURN) return "the peer sent close_notify during the handshake";
    return "SSL_accept failed (SSL_get_error " + std::to_string(ssl_error) + ")";
}

}  // namespace

Status check_private_key_file(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return Error{Errc::config, errno, "cannot read " + path};
    if ((st.st_mode & S_IROTH) != 0)
        return Error{Errc::config, path + " is readable by other users: chmod 600 it"};
    return ok_status();
}

// ---- TlsContext ----

Result<TlsContext> TlsContext::load(const ReceiveConfig& config) {
    if (auto status = check_private_key_file(config.tls_key_file); !status)
        return Error{Errc::config, "receive.tls_key_file: " + status.error().message};
    ERR_clear_error();
    TlsContext out;
    out.context_ = SSL_CTX_new(TLS_server_method());
    if (out.context_ == nullptr) return tls_error("SSL_CTX_new failed");
    SSL_CTX* ctx = out.context_;
    // RFC 5425 asks for TLS 1.2 at least; older versions are refused in the handshake.
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_num_tickets(ctx, 0);  // TLS 1.3: no NewSessionTicket writes after the handshake
    if (SSL_CTX_use_certificate_chain_file(ctx, config.tls_cert_file.c_str()) != 1)
        return tls_error("receive.tls_cert_file: cannot load " + config.tls_cert_file);
    if (SSL_CTX_use_PrivateKey_file(ctx, config.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1)
        return tls_error("receive.tls_key_file: cannot load " + config.tls_key_file);
    if (SSL_CTX_check_private_key(ctx) != 1)
        return tls_error("receive.tls_key_file: " + config.tls_key_file +
                         " does not match the certificate in " + config.tls_cert_file);
    if (!config.tls_client_ca_file.empty()) {
        const char* ca = config.tls_client_ca_file.c_str();
        if (SSL_CTX_load_verify_locations(ctx, ca, nullptr) != 1)
            return tls_error("receive.tls_client_ca_file: cannot load " + config.tls_client_ca_file);
        // The CA names go into the CertificateRequest, so clients pick the right certificate.
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca);
        if (names == nullptr)
            return tls_error("receive.tls_client_ca_file: no CA certificate in " +
                             config.tls_client_ca_file);
        SSL_CTX_set_client_CA_list(ctx, names);  // takes ownership
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    return out;
}

TlsContext::~TlsContext() {
    // Connections still using this context hold their own reference to it.
    if (context_ != nullptr) SSL_CTX_free(context_);
}

TlsContext::TlsContext(TlsContext&& other) noexcept
    : context_(std::exchange(other.context_, nullptr)) {}

TlsContext& TlsContext::operator=(TlsContext&& other) noexcept {
    if (this != &other) {
        if (context_ != nullptr) SSL_CTX_free(context_);
        context_ = std::exchange(other.context_, nullptr);
    }
    return *this;
}

// ---- TlsConnection ----

TlsConnection::TlsConnection(UniqueFd socket, const SourceAddress& peer,
                             std::uint32_t frame_bytes_max, std::int64_t now_ns, SSL_CTX* context)
    : Connection(std::move(socket), peer, frame_bytes_max, now_ns, Transport::tls),
      ssl(context != nullptr ? SSL_new(context) : nullptr) {  // SSL_new refs the context
    handshaking = true;
    if (ssl != nullptr) SSL_set_fd(ssl, fd.get());
}

TlsConnection::~TlsConnection() { SSL_free(ssl); }  // before Connection closes the socket

// ---- TlsServer ----

Result<std::unique_ptr<TlsServer>> open_tls_server(Intake& intake, ConnectionTable& table) {
    if (intake.config.tls_cert_file.empty()) return std::unique_ptr<TlsServer>();
    auto context = TlsContext::load(intake.config);
    if (!context) return context.error();
    auto server = std::make_unique<TlsServer>(intake, table, std::move(context).value());
    if (auto status = server->open(); !status) return status.error();
    return server;
}

bool serve_streams(Intake& intake, ConnectionTable& table, TlsServer* tls, bool tls_ready) {
    bool quiet = true;
    if (tls != nullptr) {
        if (tls_ready || tls->wait_ns_max() >= 0) tls->service();
        quiet = tls->wait_ns_max() < 0;
    }
    table.service();
    if (intake.take_reload_request()) {
        if (tls != nullptr)
            tls->reload();
        else
            CEFD_LOG(debug, "receive: lane %u reload requested; TLS is off, nothing to reload",
                     intake.lane);
    }
    table.end_pass();
    return quiet;
}

std::int64_t stream_wait_ns(const ConnectionTable& table, const TlsServer* tls,
                            std::int64_t wait_ns) noexcept {
    if (table.any_paused()) wait_ns = std::min(wait_ns, paused_retry_ns);
    if (tls != nullptr && tls->wait_ns_max() >= 0) wait_ns = std::min(wait_ns, tls->wait_ns_max());
    return wait_ns;
}

TlsServer::TlsServer(Intake& intake, ConnectionTable& table, TlsContext context)
    : intake_(intake),
      table_(table),
      context_(std::move(context)),
      text_(intake.config.listen + ":" + std::to_string(intake.config.tls_port)) {}

TlsServer::~TlsServer() = default;  // the connections are the table's

Status TlsServer::open() {
    const ReceiveConfig& config = intake_.config;
    epoll_fd_ = UniqueFd{::epoll_create1(EPOLL_CLOEXEC)};
    if (!epoll_fd_.valid()) return Error{Errc::io, errno, "receive: epoll_create1 for TLS"};
    auto address = ListenAddress::parse(config.listen, config.tls_port);
    if (!address) return address.error();
    auto fd = open_tcp_listener(address.value(), true, text_);
    if (!fd) return fd.error();
    listener_.fd = std::move(fd).value();
    // data.ptr null: the listener; anything else is a TlsConnection.
    if (!listener_.watch(epoll_fd_.get(), nullptr))
        return Error{Errc::io, errno, "receive: epoll_ctl for the TLS listener " + text_};
    ready_.reserve(64);
    scratch_.reserve(64);
    return ok_status();
}

void TlsServer::service() {
    if (!sigpipe_blocked_) {
        // OpenSSL writes alerts and close_notify with write(2), which raises SIGPIPE when the
        // peer has gone. Blocked on this thread, the write fails with EPIPE instead.
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
        sigpipe_blocked_ = true;
    }
    if (!ready_.empty()) run_ready();
    listener_.rewatch_if_due(table_.monotonic_now_ns());
    epoll_event events[events_max];
    const int n = ::epoll_wait(epoll_fd_.get(), events, events_max, 0);
    if (n < 0 && errno != EINTR)
        CEFD_LOG_EVERY(10, error, "receive: lane %u TLS epoll_wait failed: %s", intake_.lane,
                       std::strerror(errno));
    more_events_ = n == events_max;
    for (int i = 0; i < n; ++i) {
        if (events[i].data.ptr == nullptr)
            on_accept();
        else
            on_event(*static_cast<TlsConnection*>(events[i].data.ptr));
    }
}

std::int64_t TlsServer::wait_ns_max() const noexcept {
    if (!ready_.empty() || more_events_) return 0;
    // A resting listener is out of the epoll set, so no event will say when to put it back.
    if (!listener_.watched)
        return std::max<std::int64_t>(
            listener_.backoff.retry_at_ns() - table_.monotonic_now_ns(), 1'000'000);
    return -1;
}

void TlsServer::on_accept() {
    const bool more = listener_.accept_batch(
        accepts_per_pass_max, table_.monotonic_now_ns(), intake_.lane, "TLS", intake_.stats,
        [&](UniqueFd fd, const SourceAddress& peer) {
            auto* c = table_.accept<TlsConnection>(std::move(fd), peer, Transport::tls, *this,
                                                   context_.get());
            if (c == nullptr) return;  // refused, counted
            if (c->ssl == nullptr) {
                fail_handshake(*c, ("SSL_new failed: " + openssl_errors()).c_str());
                return;
            }
            epoll_event event{};
            event.events = EPOLLIN;
            event.data.ptr = c;
            if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, c->fd.get(), &event) != 0) {
                fail_handshake(*c, "epoll_ctl failed");
                return;
            }
            c->interest = EPOLLIN;
            on_event(*c);  // the ClientHello is often here already
        });
    // Stopped at the limit: more may be waiting in the backlog. After EAGAIN, or an error that
    // rests the listener (EMFILE), nothing is to be done before the next event.
    if (more) more_events_ = true;
}

void TlsServer::on_event(TlsConnection& connection) {
    // Stale (closed earlier this pass), or retried from the paused or ready lists.
    if (connection.closed || connection.paused || connection.ready) return;
    if (connection.handshaking && !handshake(connection)) return;
    read_and_deliver(connection);
}

// True once the handshake is complete; false while it waits for the peer or after it failed
// (then the connection is gone).
bool TlsServer::handshake(TlsConnection& connection) {
    ERR_clear_error();
    errno = 0;
    const int rc = SSL_accept(connection.ssl);
    if (rc == 1) {
        connection.handshaking = false;
        connection.last_activity_ns = table_.monotonic_now_ns();
        bump(intake_.stats.tls_accepted);
        want(connection, EPOLLIN);
        return true;
    }
    const int saved_errno = errno;
    const int error = SSL_get_error(connection.ssl, rc);
    switch (error) {
        case SSL_ERROR_WANT_READ: want(connection, EPOLLIN); return false;
        case SSL_ERROR_WANT_WRITE: want(connection, EPOLLIN | EPOLLOUT); return false;
        default:
            // Handshake bytes are not activity: the table closes a handshake that is not done
            // within tls_handshake_timeout_ms of the accept, however slowly it trickles.
            connection.fatal = true;
            fail_handshake(connection,
                           handshake_failure_reason(connection.ssl, error, saved_errno).c_str());
            return false;
    }
}

void TlsServer::read_and_deliver(TlsConnection& connection) {
    for (unsigned reads = 0; reads < reads_per_event_max; ++reads) {
        CEFD_ASSERT(connection.room() != 0);
        std::size_t n = 0;
        ERR_clear_error();
        const int rc = SSL_read_ex(connection.ssl, connection.read_at(), connection.room(), &n);
        if (rc == 1) {
            table_.on_read(connection, n);
        } else {
            switch (SSL_get_error(connection.ssl, rc)) {
                case SSL_ERROR_WANT_READ: want(connection, EPOLLIN); return;
                case SSL_ERROR_WANT_WRITE: want(connection, EPOLLIN | EPOLLOUT); return;
                case SSL_ERROR_ZERO_RETURN: break;  // close_notify: a clean end of stream
                case SSL_ERROR_SYSCALL:
                    // EOF without close_notify, or a reset: routine for syslog senders.
                    connection.fatal = true;
                    ERR_clear_error();
                    break;
                default:
                    connection.fatal = true;
                    // A sender that closes without close_notify is routine for syslog, and
                    // octet counting shows a cut frame anyway (counted as partial).
                    if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                        ERR_clear_error();
                        break;
                    }
                    CEFD_LOG_EVERY(10, warn, "receive: lane %u TLS read from %s failed: %s",
                                   intake_.lane, connection.source.to_string().c_str(),
                                   openssl_errors().c_str());
            }
            connection.eof = true;  // deliver what is left, then close
        }
        if (table_.process(connection) != ConnectionTable::Next::read) return;  // paused, closed
    }
    // The budget ran out with bytes perhaps still inside OpenSSL, where epoll cannot see them.
    connection.ready = true;
    ready_.push_back(&connection);
}

void TlsServer::run_ready() {
    scratch_.swap(ready_);  // read_and_deliver may put a connection back on ready_
    for (TlsConnection* connection : scratch_) {
        if (connection->closed) continue;
        connection->ready = false;
        read_and_deliver(*connection);
    }
    scratch_.clear();
}

void TlsServer::want(TlsConnection& connection, std::uint32_t events) {
    if (connection.interest == events) return;
    epoll_event event{};
    event.events = events;
    event.data.ptr = &connection;
    // No interest means out of the set: epoll reports a hang-up or an error whatever the
    // interest, so a paused connection the peer reset would wake every wait (a spin).
    const int op = events == 0 ? EPOLL_CTL_DEL : connection.interest == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (::epoll_ctl(epoll_fd_.get(), op, connection.fd.get(), &event) != 0)
        CEFD_LOG_EVERY(10, error, "receive: lane %u epoll_ctl for a TLS connection: %s",
                       intake_.lane, std::strerror(errno));
    connection.interest = events;
}

void TlsServer::fail_handshake(TlsConnection& connection, const char* reason) {
    // Two rate limits, not one: a sender whose certificate fails the check (what an operator must
    // see, to fix an appliance) is not hidden behind the garbage a port scanner sends, which
    // fails in other ways and can fill the one slot every 10 s.
    const bool certificate = std::strstr(reason, "certificate") != nullptr;
    CEFD_LOG_EVERY_PER(10, 2, certificate ? 0 : 1, warn,
                       "receive: lane %u TLS handshake with %s port %u on %s failed: %s "
                       "(receive_tls_handshake_failures_total=%llu)",
                       intake_.lane, connection.source.to_string().c_str(),
                       static_cast<unsigned>(connection.source.port), text_.c_str(), reason,
                       static_cast<unsigned long long>(read(intake_.stats.tls_handshake_failures) + 1));
    table_.close(connection);  // on_close counts it
}

// ---- ConnectionDriver ----

void TlsServer::resume_reads(Connection& connection) {
    // OpenSSL may hold decrypted bytes that no socket event will announce: read now.
    read_and_deliver(static_cast<TlsConnection&>(connection));
}

void TlsServer::pause_reads(Connection& connection) {
    want(static_cast<TlsConnection&>(connection), 0);  // backpressure to the sender
}

bool TlsServer::has_unread_bytes(Connection& connection) {
    auto& tls = static_cast<TlsConnection&>(connection);
    return (tls.ssl != nullptr && SSL_has_pending(tls.ssl) == 1) ||
           ConnectionDriver::has_unread_bytes(connection);
}

std::size_t TlsServer::read_at_stop(Connection& connection) {
    auto& tls = static_cast<TlsConnection&>(connection);
    if (tls.ssl == nullptr || tls.fatal) return 0;
    int rc = 0;
    std::size_t n = 0;
    ERR_clear_error();
    if (tls.handshaking) {  // a TLS 1.3 client may have sent syslog right behind its Finished
        rc = SSL_accept(tls.ssl);
        if (rc == 1) {
            tls.handshaking = false;
            bump(intake_.stats.tls_accepted);
            ERR_clear_error();
        }
    }
    if (!tls.handshaking) {
        rc = SSL_read_ex(tls.ssl, connection.read_at(), connection.room(), &n);
        if (rc == 1) return n;
    }
    switch (SSL_get_error(tls.ssl, rc)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return 0;  // nothing more now
        case SSL_ERROR_ZERO_RETURN:
            break;  // close_notify
        case SSL_ERROR_SYSCALL:
            tls.fatal = true;
            break;  // a reset or EOF without close_notify
        default:
            tls.fatal = true;
            if (ERR_GET_REASON(ERR_peek_error()) != SSL_R_UNEXPECTED_EOF_WHILE_READING)
                CEFD_LOG_EVERY(10, warn, "receive: lane %u TLS read from %s at stop failed: %s", intake_.lane,
                               connection.source.to_string().c_str(), openssl_errors().c_str());
    }
    ERR_clear_error();
    connection.eof = true;  // a handshake that failed here is counted as one when it closes
    return 0;
}

void TlsServer::on_close(Connection& connection) {
    auto& tls = static_cast<TlsConnection&>(connection);
    if (tls.ready) std::erase(ready_, &tls);
    if (tls.handshaking) {
        // An eviction is counted as one (receive_tcp_evicted_total), not as a failed handshake;
        // nor is a handshake the stop cut short.
        if (!tls.evicted && !tls.stopped) bump(intake_.stats.tls_handshake_failures);
        return;
    }
    bump(intake_.stats.tls_closed);
    if (!tls.fatal) {
        // Best effort close_notify; OpenSSL forbids it after a fatal error on the connection.
        SSL_shutdown(tls.ssl);
        ERR_clear_error();
    }
}

void TlsServer::reload() {
    auto next = TlsContext::load(intake_.config);
    if (!next) {
        bump(intake_.stats.tls_reload_failures);
        CEFD_LOG(error, "%s (reload refused: lane %u keeps its current TLS certificate)",
                 next.error().message.c_str(), intake_.lane);
        return;
    }
    context_ = std::move(next).value();  // connections still open keep the old context alive
    bump(intake_.stats.tls_reloads);
    CEFD_LOG(info, "receive: lane %u TLS certificate reloaded from %s", intake_.lane,
             intake_.config.tls_cert_file.c_str());
}

}  // namespace cefd::receive
