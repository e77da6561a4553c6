// stages/receive/tls.h: syslog over TLS (RFC 5425) for one lane: a non-blocking SO_REUSEPORT
// listener on receive.tls_port, OpenSSL handshakes and reads, the same RFC 6587 framer as TCP.
//
// Lifecycle: the lane's engine creates it in open() (open_tls_server) when tls_cert_file is
// set; it lives as long as the engine. Only the lane's receive thread touches it. Its
// connections live in the lane's ConnectionTable with the TCP ones (one total, one per-source
// cap, one eviction order); this server is their ConnectionDriver.
//
// How an engine drives it: the server keeps its own epoll set (the listener and every TLS
// socket, level-triggered) and exposes that set's fd. The epoll engine watches the fd in its
// own epoll set; the io_uring engine keeps a multishot poll on it. When the fd is readable, or
// when wait_ns_max() says so, the engine calls service(), which never blocks. OpenSSL wants
// plain non-blocking sockets, so this is simpler to read than memory BIOs fed by io_uring, and
// TLS decryption costs far more per byte than the readiness wake-up does.
//
// Per connection: accept4 -> SSL_accept until the handshake completes (tls_accepted) or fails
// (tls_handshake_failures, logged with the peer and OpenSSL's reason; a handshake not done
// within tls_handshake_timeout_ms is closed by the table and counted in both
// tls_handshake_failures and tls_handshake_timeouts) -> SSL_read into the
// connection buffer -> TcpFramer -> lane ring with Transport::tls. At most reads_per_event
// SSL_reads per connection per pass; a connection with more to read waits on the ready list so
// one fast sender cannot starve the lane.
//
// Full ring: the table pauses the connection (taken out of the epoll set, retried every
// millisecond), so the sender's TCP window fills: backpressure, nothing dropped.
//
// Certificates: the server certificate, key and client CA live in an SSL_CTX. reload() builds a
// new one; new connections use it, existing ones keep the old one (OpenSSL counts references,
// so the old context is freed with its last connection). A reload that fails keeps the old
// context and logs why. Minimum TLS 1.2, no renegotiation, no session tickets (every lane has
// its own context, so a ticket could not be resumed on another lane anyway).
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/result.h"
#include "stages/receive/connection_table.h"
#include "stages/receive/engine.h"

namespace cefd::receive {

/// An owned SSL_CTX with the server certificate, key, protocol floor and client verification.
class TlsContext {
public:
    /// Loads tls_cert_file, tls_key_file and tls_client_ca_file. The error names the file and
    /// OpenSSL's reason. Refuses a key file other users can read.
    static Result<TlsContext> load(const ReceiveConfig& config);

    TlsContext() = default;
    ~TlsContext();
    TlsContext(TlsContext&& other) noexcept;
    TlsContext& operator=(TlsContext&& other) noexcept;
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    [[nodiscard]] SSL_CTX* get() const noexcept { return context_; }

private:
    SSL_CTX* context_ = nullptr;
};

/// Returns an error when `path` is missing or readable by users other than its owner and group
/// (the same rule the config loader applies to secret files).
Status check_private_key_file(const std::string& path);

/// One accepted TLS connection: a Connection (buffer, framer, flags) plus its SSL.
struct TlsConnection : Connection {
    /// `context` null or SSL_new failing leaves `ssl` null: the server closes it at once.
    TlsConnection(UniqueFd socket, const SourceAddress& peer, std::uint32_t frame_bytes_max,
                  std::int64_t now_ns, SSL_CTX* context);
    ~TlsConnection() override;

    SSL* ssl = nullptr;
    bool ready = false;        // on the ready list: more to read than one pass allowed
    bool fatal = false;        // OpenSSL reported a fatal error: no close_notify may be sent
    std::uint32_t interest = 0;  // events currently asked of epoll
};

class TlsServer final : private ConnectionDriver {
public:
    TlsServer(Intake& intake, ConnectionTable& table, TlsContext context);
    ~TlsServer();
    TlsServer(const TlsServer&) = delete;
    TlsServer& operator=(const TlsServer&) = delete;

    /// Binds the lane's TLS listener and creates the epoll set.
    Status open();

    /// The epoll set's fd: readable when a TLS socket or the listener has something.
    [[nodiscard]] int fd() const noexcept { return epoll_fd_.get(); }

    /// Accepts, handshakes, reads and frames whatever is ready. Never blocks. The table's clock
    /// must be set for this pass.
    void service();

    /// How long the engine may wait before calling service() again even without an event:
    /// 0 when connections are on the ready list or the last pass stopped at a limit, the rest
    /// left while the listener rests after an accept error, else -1 (no limit). Paused connections are the table's (ConnectionTable::any_paused).
    [[nodiscard]] std::int64_t wait_ns_max() const noexcept;

    /// Stop time: closes the listener, so that newcomers are refused. Connections in its backlog
    /// are reset: they cannot have sent syslog yet (their handshake has not started).
    void stop_listening() noexcept { listener_.fd.reset(); }

    /// Builds a new SSL_CTX from the config's files and swaps it in; keeps the old on failure.
    void reload();

private:
    void on_accept();
    void on_event(TlsConnection& connection);
    bool handshake(TlsConnection& connection);
    void read_and_deliver(TlsConnection& connection);
    void run_ready();
    void want(TlsConnection& connection, std::uint32_t events);
    void fail_handshake(TlsConnection& connection, const char* reason);

    // ConnectionDriver.
    void resume_reads(Connection& connection) override;
    void pause_reads(Connection& connection) override;
    bool cancel_reads(Connection&) override { return false; }  // SSL_read never outlives a pass
    bool has_unread_bytes(Connection& connection) override;
    std::size_t read_at_stop(Connection& connection) override;
    void on_close(Connection& connection) override;

    Intake& intake_;
    ConnectionTable& table_;
    TlsContext context_;
    UniqueFd epoll_fd_;
    PolledListener listener_;
    std::string text_;  // "127.0.0.1:6514" for log lines
    std::vector<TlsConnection*> ready_;
    std::vector<TlsConnection*> scratch_;  // run_ready's copy of ready_
    bool more_events_ = false;  // the last pass stopped at a limit; call service() again soon
    bool sigpipe_blocked_ = false;
};

/// The lane's TlsServer when tls_cert_file is set (null when it is not), listening.
Result<std::unique_ptr<TlsServer>> open_tls_server(Intake& intake, ConnectionTable& table);

/// The stream work of one pass, the same in both engines after their own events: TLS sockets,
/// paused connections and timeouts (ConnectionTable::service), a requested certificate reload,
/// and freeing what closed. False when TLS has work that no event will announce (do not sleep).
bool serve_streams(Intake& intake, ConnectionTable& table, TlsServer* tls, bool tls_ready);

/// The longest an engine may wait for events, at most `wait_ns`: 1 ms while connections are
/// paused, 0 while TLS has work no event will announce.
std::int64_t stream_wait_ns(const ConnectionTable& table, const TlsServer* tls,
                            std::int64_t wait_ns) noexcept;

}  // namespace cefd::receive
