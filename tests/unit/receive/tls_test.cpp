// Receiver over TLS (RFC 5425), both engines, real loopback sockets and a real OpenSSL client.
// The test CA, server and client certificates are made here with the OpenSSL API (EC P-256,
// fast) and written as PEM files into a TempDir.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/clock.h"
#include "engine/config/config_errors.h"
#include "engine/record.h"
#include "stages/receive/engine.h"
#include "stages/receive/receive.h"
#include "tests/support/support.h"
#include "tests/unit/receive/test_lane.h"
#include "tests/unit/receive/test_pki.h"

namespace cefd {
namespace {

using namespace std::chrono_literals;
using test::common_name_of;
using test::Lane;
using test::Received;
using test::Identity;
using test::make_identity;
using test::wait_until;
using test::write_cert;
using test::write_key;

// ---- the receiving lane ----

// ---- the client ----

int tcp_connect(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to), 0)
        << std::strerror(errno);
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval timeout{10, 0};  // no read may hang the test
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    return fd;
}

std::string drain_openssl_errors() {
    std::string out;
    for (unsigned long code = ERR_get_error(); code != 0; code = ERR_get_error()) {
        char text[256];
        ERR_error_string_n(code, text, sizeof text);
        out += text;
        out += "; ";
    }
    return out;
}

struct ClientOptions {
    std::string ca_file;    // verify the server against it (empty: no verification)
    std::string cert_file;  // client certificate for mTLS (empty: none)
    std::string key_file;
    int max_version = 0;    // e.g. TLS1_1_VERSION; 0: library default
};

/// A blocking TLS client. connect() returns false with `error` set when the handshake fails.
class TlsClient {
public:
    explicit TlsClient(const ClientOptions& options) {
        context_ = SSL_CTX_new(TLS_client_method());
        if (!options.ca_file.empty()) {
            SSL_CTX_load_verify_locations(context_, options.ca_file.c_str(), nullptr);
            SSL_CTX_set_verify(context_, SSL_VERIFY_PEER, nullptr);
        }
        if (!options.cert_file.empty()) {
            EXPECT_EQ(SSL_CTX_use_certificate_chain_file(context_, options.cert_file.c_str()), 1);
            EXPECT_EQ(SSL_CTX_use_PrivateKey_file(context_, options.key_file.c_str(),
                                                  SSL_FILETYPE_PEM),
                      1);
        }
        if (options.max_version != 0) {
            // Security level 0 so this client really offers the old version.
            SSL_CTX_set_security_level(context_, 0);
            SSL_CTX_set_min_proto_version(context_, options.max_version);
            SSL_CTX_set_max_proto_version(context_, options.max_version);
        }
    }
    ~TlsClient() {
        if (ssl_ != nullptr) SSL_free(ssl_);
        if (fd_ >= 0) ::close(fd_);
        SSL_CTX_free(context_);
    }
    TlsClient(const TlsClient&) = delete;
    TlsClient& operator=(const TlsClient&) = delete;

    bool connect(int port) {
        fd_ = tcp_connect(port);
        ssl_ = SSL_new(context_);
        SSL_set_fd(ssl_, fd_);
        ERR_clear_error();
        const int rc = retry_on_eintr([&] { return SSL_connect(ssl_); });
        if (rc == 1) return true;
        const int saved_errno = errno;
        error = "SSL_get_error " + std::to_string(SSL_get_error(ssl_, rc)) + ", errno " +
                std::to_string(saved_errno) + ": " + drain_openssl_errors();
        return false;
    }
    /// One SSL_write: one TLS record per 16 KB.
    void write(std::string_view bytes) {
        while (!bytes.empty()) {
            const int n = retry_on_eintr(
                [&] { return SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())); });
            ASSERT_GT(n, 0) << drain_openssl_errors();
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    /// True when the server ended the connection (alert, close_notify or EOF) before a timeout.
    bool closed_by_server() {
        char byte = 0;
        const int n = retry_on_eintr([&] { return SSL_read(ssl_, &byte, 1); });
        if (n > 0) return false;
        const int error_code = SSL_get_error(ssl_, n);
        error = drain_openssl_errors();
        return error_code != SSL_ERROR_WANT_READ &&
               !(error_code == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK));
    }
    /// A write that may fail because the server has already refused this client.
    bool try_write(std::string_view bytes) {
        return retry_on_eintr([&] {
                   return SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()));
               }) > 0;
    }
    void shutdown() { SSL_shutdown(ssl_); }
    [[nodiscard]] std::string server_common_name() const {
        X509* cert = SSL_get1_peer_certificate(ssl_);
        if (cert == nullptr) return {};
        std::string name = common_name_of(cert);
        X509_free(cert);
        return name;
    }
    [[nodiscard]] SSL* ssl() const { return ssl_; }

    std::string error;

private:
    // A blocking socket with SO_RCVTIMEO returns EINTR, not a restart, when task work interrupts
    // it (io_uring rings torn down on this thread do that), and OpenSSL reports WANT_READ.
    template <class Operation>
    int retry_on_eintr(Operation&& operation) {
        int rc = 0;
        for (int attempt = 0; attempt < 100; ++attempt) {
            errno = 0;
            rc = operation();
            if (rc > 0) return rc;
            const int error_code = SSL_get_error(ssl_, rc);
            if ((error_code != SSL_ERROR_WANT_READ && error_code != SSL_ERROR_WANT_WRITE) ||
                errno != EINTR)
                return rc;
        }
        return rc;
    }

    SSL_CTX* context_ = nullptr;
    SSL* ssl_ = nullptr;
    int fd_ = -1;
};

// ---- fixture ----

const char* engine_label(ReceiveConfig::Engine engine) {
    return engine == ReceiveConfig::Engine::io_uring ? "io_uring" : "recvmmsg";
}

class TlsReceiverTest : public ::testing::TestWithParam<ReceiveConfig::Engine> {
protected:
    static void SetUpTestSuite() {
        ::signal(SIGPIPE, SIG_IGN);  // the clients write to sockets the server may have closed
        ca_ = new Identity(make_identity("cefd test CA", nullptr, 1));
        other_ca_ = new Identity(make_identity("some other CA", nullptr, 2));
        server_ = new Identity(make_identity("cefd-1", ca_, 10));
        server_two_ = new Identity(make_identity("cefd-2", ca_, 11));
        client_ = new Identity(make_identity("sender", ca_, 20));
        stranger_ = new Identity(make_identity("stranger", other_ca_, 30));
    }
    static void TearDownTestSuite() {
        for (Identity* identity : {ca_, other_ca_, server_, server_two_, client_, stranger_})
            delete identity;
    }

    void SetUp() override {
        if (GetParam() == ReceiveConfig::Engine::io_uring) {
            const Status& probe = receive::probe_uring();
            if (!probe.ok()) GTEST_SKIP() << "io_uring unusable here: " << probe.error().message;
        }
        write_cert(dir.file("ca.pem"), ca_->cert.get());
        write_cert(dir.file("server.pem"), server_->cert.get());
        write_key(dir.file("server.key"), server_->key.get());
        write_cert(dir.file("client.pem"), client_->cert.get());
        write_key(dir.file("client.key"), client_->key.get());
        write_cert(dir.file("stranger.pem"), stranger_->cert.get());
        write_key(dir.file("stranger.key"), stranger_->key.get());
        port = test::free_port(false);
        config.listen = "127.0.0.1";
        config.udp_port = 0;
        config.tcp_port = 0;
        config.tls_port = static_cast<std::uint16_t>(port);
        config.tls_cert_file = dir.file("server.pem");
        config.tls_key_file = dir.file("server.key");
        config.engine = GetParam();
    }

    std::unique_ptr<Lane> start_lane(std::size_t ring_bytes = 1 << 20, unsigned index = 0) {
        auto lane = std::make_unique<Lane>(config, index, ring_bytes);
        EXPECT_TRUE(lane->ok()) << lane->error.describe();
        if (!lane->ok()) return nullptr;
        EXPECT_STREQ(lane->receiver().engine_name(), engine_label(GetParam()));
        lane->start();
        return lane;
    }

    ClientOptions client_options() const { return {.ca_file = dir.file("ca.pem")}; }
    ClientOptions mtls_options(const std::string& name) const {
        return {.ca_file = dir.file("ca.pem"),
                .cert_file = dir.file(name + ".pem"),
                .key_file = dir.file(name + ".key")};
    }

    static inline Identity* ca_ = nullptr;
    static inline Identity* other_ca_ = nullptr;
    static inline Identity* server_ = nullptr;
    static inline Identity* server_two_ = nullptr;
    static inline Identity* client_ = nullptr;
    static inline Identity* stranger_ = nullptr;

    test::TempDir dir;
    int port = 0;
    ReceiveConfig config;
};

// ---- tests ----

TEST_P(TlsReceiverTest, FramesArriveWithTransportTls) {
    auto lane = start_lane();
    ASSERT_TRUE(lane);
    TlsClient client(client_options());
    ASSERT_TRUE(client.connect(port)) << client.error;
    EXPECT_EQ(client.server_common_name(), "cefd-1");
    client.write("<13>newline frame\n18 <14>octet counted\n<15>crlf frame\r\n");
    ASSERT_TRUE(lane->wait_for(3)) << lane->got.size();
    const std::vector<std::string> expected = {"<13>newline frame", "<14>octet counted",
                                               "<15>crlf frame"};
    for (std::size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(lane->got[i].bytes, expected[i]);
        EXPECT_EQ(lane->got[i].meta.transport, Transport::tls);
        EXPECT_EQ(lane->got[i].meta.source.to_string(), "127.0.0.1");
        EXPECT_EQ(lane->got[i].meta.flags, 0);
    }
    EXPECT_EQ(read(lane->stats().tls_accepted), 1U);
    EXPECT_EQ(read(lane->stats().tls_frames), 3U);
    EXPECT_EQ(read(lane->stats().tcp_frames), 0U);
    client.shutdown();
    ASSERT_TRUE(wait_until(5s, [&] { return read(lane->stats().tls_closed) == 1; }));
    EXPECT_EQ(read(lane->stats().tls_handshake_failures), 0U);
}

TEST_P(TlsReceiverTest, TwoLanesShareTheTlsPort) {
    auto lane0 = start_lane(1 << 20, 0);
    auto lane1 = start_lane(1 << 20, 1);
    ASSERT_TRUE(lane0 && lane1);
    constexpr int clients = 16;
    std::vector<std::unique_ptr<TlsClient>> senders;
    for (int i = 0; i < clients; ++i) {
        senders.push_back(std::make_unique<TlsClient>(client_options()));
        ASSERT_TRUE(senders.back()->connect(port)) << senders.back()->error;
        senders.back()->write("<13>client " + std::to_string(i) + "\n");
    }
    ASSERT_TRUE(wait_until(10s, [&] {
        lane0->drain();
        lane1->drain();
        return lane0->got.size() + lane1->got.size() >= clients;
    })) << lane0->got.size() + lane1->got.size();
    EXPECT_EQ(lane0->got.size() + lane1->got.size(), static_cast<std::size_t>(clients));
    // SO_REUSEPORT hashes the 16 connections over both listeners (all on one: p = 2^-15).
    EXPECT_GT(read(lane0->stats().tls_accepted), 0U);
    EXPECT_GT(read(lane1->stats().tls_accepted), 0U);
}

TEST_P(TlsReceiverTest, OctetCountedFramesSplitAcrossTlsRecords) {
    auto lane = start_lane();
    ASSERT_TRUE(lane);
    TlsClient client(client_options());
    ASSERT_TRUE(client.connect(port)) << client.error;
    // One record per byte: the count, its space and the body all arrive in pieces.
    const std::string small = "<13>split into one-byte records";
    const std::string framed = std::to_string(small.size()) + " " + small;
    for (const char c : framed) client.write(std::string_view(&c, 1));
    // A 40 KB frame in one SSL_write: OpenSSL cuts it into three 16 KB records.
    const std::string large = "<14>" + std::string(40'000, 'L');
    client.write(std::to_string(large.size()) + " " + large);
    // The count at the end of one record, the body in the next.
    client.write("9 ");
    client.write("<15>after");
    ASSERT_TRUE(lane->wait_for(3)) << lane->got.size();
    EXPECT_EQ(lane->got[0].bytes, small);
    EXPECT_EQ(lane->got[1].bytes, large);
    EXPECT_EQ(lane->got[2].bytes, "<15>after");
    for (const Received& r : lane->got) EXPECT_EQ(r.meta.flags, 0);
}

TEST_P(TlsReceiverTest, MutualTlsAcceptsAGoodClientCertificate) {
    config.tls_client_ca_file = dir.file("ca.pem");
    auto lane = start_lane();
    ASSERT_TRUE(lane);
    TlsClient client(mtls_options("client"));
    ASSERT_TRUE(client.connect(port)) << client.error;
    client.write("<13>from an authenticated sender\n");
    ASSERT_TRUE(lane->wait_for(1));
    EXPECT_EQ(lane->got[0].bytes, "<13>from an authenticated sender");
    EXPECT_EQ(read(lane->stats().tls_accepted), 1U);
    EXPECT_EQ(read(lane->stats().tls_handshake_failures), 0U);
}

TEST_P(TlsReceiverTest, MutualTlsRejectsMissingAndForeignClientCertificates) {
    config.tls_client_ca_file = dir.file("ca.pem");
    auto lane = start_lane();
    ASSERT_TRUE(lane);
    {
        TlsClient anonymous(client_options());
        // With TLS 1.3 the client finishes its side before the server checks it, so the refusal
        // may arrive as an alert on the first read instead.
        if (anonymous.connect(port)) {
            if (anonymous.try_write("<13>must not arrive\n")) {
                EXPECT_TRUE(anonymous.closed_by_server());
            }
        }
        ASSERT_TRUE(wait_until(5s, [&] { return read(lane->stats().tls_handshake_failures) == 1; }));
    }
    {
        TlsClient stranger(mtls_options("stranger"));
        if (stranger.connect(port)) {
            if (stranger.try_write("<13>must not arrive either\n")) {
                EXPECT_TRUE(stranger.closed_by_server());
            }
        }
        ASSERT_TRUE(wait_until(5s, [&] { return read(lane->stats().tls_handshake_failures) == 2; }));
    }
    EXPECT_EQ(read(lane->stats().tls_accepted), 0U);
    EXPECT_EQ(read(lane->stats().tls_frames), 0U);
    lane->drain();
    EXPECT_TRUE(lane->got.empty());
    // The listener still serves a good client.
    TlsClient good(mtls_options("client"));
    ASSERT_TRUE(good.connect(port)) << good.error;
    good.write("<13>still served\n");
    ASSERT_TRUE(lane->wait_for(1));
}

TEST_P(TlsReceiverTest, Tls11ClientIsRefused) {
    auto lane = start_lane();
    ASSERT_TRUE(lane);
    TlsClient old(ClientOptions{.ca_file = dir.file("ca.pem"), .max_version = TLS1_1_VERSION});
    EXPECT_FALSE(old.connect(port));
    // The server answered with a protocol_version alert (the client did send its hello).
    EXPECT_NE(old.error.find("protocol version"), std::string::npos) << old.error;
    ASSERT_TRUE(wait_until(5s, [&] { return read(lane->stats().tls_handshake_failures) == 1; }));
    EXPECT_EQ(read(lane->stats().tls_accepted), 0U);
    // TLS 1.2 is the floor and is accepted.
    TlsClient twelve(ClientOptions{.ca_file = dir.file("ca.pem"), .max_version = TLS1_2_VERSION});
    ASSERT_TRUE(twelve.connect(port)) << twelve.error;
    EXPECT_STREQ(SSL_get_version(twelve.ssl()), "TLSv1.2");
    twelve.write("<13>over TLS 1.2\n");
    ASSERT_TRUE(lane->wait_for(1));
}

TEST_P(TlsReceiverTest, GarbageIsAHandshakeFailureAndTheListenerKeepsServing) {
    auto lane = start_lane();
    ASSERT_TRUE(lane);
    for (int i = 0; i < 3; ++i) {
        const int fd = tcp_connect(port);
        const std::string garbage = "<13>plain syslog sent to the TLS port by mistake\n";
        ASSERT_EQ(::send(fd, garbage.data(), garbage.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(garbage.size()));
        char byte = 0;
        EXPECT_LE(::recv(fd, &byte, 1, 0), 0);  // an alert maybe, then the close
        ::close(fd);
    }
    const int silent = tcp_connect(port);  // connects and leaves without a byte
    ::close(silent);
    ASSERT_TRUE(wait_until(5s, [&] { return read(lane->stats().tls_handshake_failures) == 4; }))
        << read(lane->stats().tls_handshake_failures);
    lane->drain();
    EXPECT_TRUE(lane->got.empty());
    TlsClient client(client_options());
    ASSERT_TRUE(client.connect(port)) << client.error;
    client.write("<13>after the garbage\n");
    ASSERT_TRUE(lane->wait_for(1));
    EXPECT_EQ(lane->got[0].bytes, "<13>after the garbage");
}

TEST_P(TlsReceiverTest, ReloadServesTheNewCertificateToNewConnectionsOnly) {
    auto lane = start_lane();
    ASSERT_TRUE(lane);
    TlsClient before(client_options());
    ASSERT_TRUE(before.connect(port)) << before.error;
    EXPECT_EQ(before.server_common_name(), "cefd-1");
    before.write("<13>before reload\n");
    ASSERT_TRUE(lane->wait_for(1));

    write_cert(dir.file("server.pem"), server_two_->cert.get());
    write_key(dir.file("server.key"), server_two_->key.get());
    lane->receiver().request_reload();
    ASSERT_TRUE(wait_until(5s, [&] { return read(lane->stats().tls_reloads) == 1; }));

    TlsClient after(client_options());
    ASSERT_TRUE(after.connect(port)) << after.error;
    EXPECT_EQ(after.server_common_name(), "cefd-2");
    after.write("<13>new connection\n");
    before.write("<13>old connection still works\n");
    ASSERT_TRUE(lane->wait_for(3));

    // A broken file is refused; the last good certificate stays.
    test::write_file(dir.file("server.pem"), "not a certificate\n");
    lane->receiver().request_reload();
    ASSERT_TRUE(wait_until(5s, [&] { return read(lane->stats().tls_reload_failures) == 1; }));
    TlsClient third(client_options());
    ASSERT_TRUE(third.connect(port)) << third.error;
    EXPECT_EQ(third.server_common_name(), "cefd-2");
    EXPECT_EQ(read(lane->stats().tls_reloads), 1U);
}

TEST_P(TlsReceiverTest, FullRingPausesTlsAndLosesNothing) {
    auto lane = start_lane(4096);  // holds about 40 of these frames
    ASSERT_TRUE(lane);
    TlsClient client(client_options());
    ASSERT_TRUE(client.connect(port)) << client.error;
    constexpr int frames = 3000;
    std::string stream;
    for (int i = 0; i < frames; ++i) stream += "<13>backpressure frame " + std::to_string(i) + "\n";
    std::jthread writer([&] { client.write(stream); });
    ASSERT_TRUE(lane->wait_for(frames, 20s)) << lane->got.size();
    for (int i = 0; i < frames; ++i)
        ASSERT_EQ(lane->got[i].bytes, "<13>backpressure frame " + std::to_string(i));
    writer.join();
}

TEST_P(TlsReceiverTest, IdleConnectionDeliversItsUnterminatedFrameAndCloses) {
    config.tcp_idle_timeout_ms = 100;
    auto lane = start_lane();
    ASSERT_TRUE(lane);
    TlsClient client(client_options());
    ASSERT_TRUE(client.connect(port)) << client.error;
    client.write("<13>complete\n<13>no newline, then silence");
    ASSERT_TRUE(lane->wait_for(2));
    EXPECT_EQ(lane->got[1].bytes, "<13>no newline, then silence");
    EXPECT_TRUE(client.closed_by_server());
    ASSERT_TRUE(wait_until(5s, [&] { return read(lane->stats().tls_closed) == 1; }));
    EXPECT_EQ(read(lane->stats().tcp_idle_closed), 1U);
    // A connection that never finishes its handshake is a handshake failure.
    const int silent = tcp_connect(port);
    ASSERT_TRUE(wait_until(5s, [&] { return read(lane->stats().tls_handshake_failures) == 1; }));
    ::close(silent);
}

TEST_P(TlsReceiverTest, StalledHandshakeIsClosedByTheHandshakeTimeout) {
    // Issue 13.15: a handshake used to be allowed tcp_idle_timeout_ms (5 min by default).
    config.tls_handshake_timeout_ms = 200;
    auto lane = start_lane();
    ASSERT_TRUE(lane);
    const int stalled = tcp_connect(port);
    const char start_of_record[] = {0x16, 0x03, 0x01};  // a ClientHello that never goes on
    ASSERT_EQ(::send(stalled, start_of_record, sizeof start_of_record, MSG_NOSIGNAL), 3);
    ASSERT_TRUE(wait_until(5s, [&] { return read(lane->stats().tls_handshake_timeouts) == 1; }));
    EXPECT_EQ(read(lane->stats().tls_handshake_failures), 1U);
    EXPECT_EQ(read(lane->stats().tcp_idle_closed), 0U);
    char byte = 0;
    EXPECT_LE(::recv(stalled, &byte, 1, 0), 0);  // closed by the server
    TlsClient client(client_options());  // and the listener still serves
    ASSERT_TRUE(client.connect(port)) << client.error;
    client.write("<13>after the stalled one\n");
    ASSERT_TRUE(lane->wait_for(1));
    ::close(stalled);
}

TEST_P(TlsReceiverTest, AcceptAtTheFileLimitBacksOffInsteadOfSpinning) {
    // Issue 13.13, TLS side: after an EMFILE the TLS server asked for an immediate retry
    // (wait 0), so both engines spun while connections waited in the TLS backlog.
    auto lane = std::make_unique<Lane>(config, 0);
    ASSERT_TRUE(lane->ok()) << lane->error.describe();
    lane->start();
    std::vector<int> clients;
    for (int i = 0; i < 3; ++i) clients.push_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    rlimit before{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &before), 0);
    const int lowest_free = ::dup(0);
    ASSERT_GE(lowest_free, 0);
    ::close(lowest_free);
    rlimit lowered = before;
    lowered.rlim_cur = static_cast<rlim_t>(lowest_free);  // no new fd fits: accept gets EMFILE
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (const int fd : clients)
        EXPECT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to), 0);
    const bool failed = wait_until(5s, [&] { return read(lane->stats().tcp_accept_errors) != 0; });
    const std::int64_t cpu_before_ns = lane->receive_thread_cpu_ns();
    const std::int64_t wall_before_ns = monotonic_ns();
    // A window of wall time to measure CPU over (CPU time, not timing, is what is asserted).
    (void)wait_until(5s, [&] { return monotonic_ns() - wall_before_ns >= 600'000'000; });
    const std::int64_t cpu_used_ns = lane->receive_thread_cpu_ns() - cpu_before_ns;
    const std::int64_t wall_ns = monotonic_ns() - wall_before_ns;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &before), 0);
    ASSERT_TRUE(failed) << "accept never failed with EMFILE";
    EXPECT_LT(cpu_used_ns, wall_ns / 5) << "receive thread used " << cpu_used_ns / 1'000'000
                                        << " ms of CPU in " << wall_ns / 1'000'000 << " ms";
    // With fds back, the waiting connections are accepted (their handshakes then time out).
    ASSERT_TRUE(wait_until(5s, [&] { return read(lane->stats().tcp_accept_errors) != 0; }));
    TlsClient client(client_options());
    ASSERT_TRUE(client.connect(port)) << client.error;
    client.write("<13>after the file limit\n");
    ASSERT_TRUE(lane->wait_for(1));
    for (const int fd : clients) ::close(fd);
}

TEST_P(TlsReceiverTest, KeyReadableByOthersIsRefusedAtOpen) {
    ::chmod(config.tls_key_file.c_str(), 0644);
    ByteRing ring(1 << 16);
    auto receiver = Receiver::open(config, 0, ring);
    ASSERT_FALSE(receiver.ok());
    EXPECT_NE(receiver.error().message.find("readable by other users"), std::string::npos)
        << receiver.error().message;
    ConfigErrors errors;
    config.validate(errors);
    ASSERT_EQ(errors.list().size(), 1U);
    EXPECT_NE(errors.list().front().find("receive.tls_key_file"), std::string::npos);
}

TEST_P(TlsReceiverTest, MissingCertificateFailsToOpenNamingTheFile) {
    config.tls_cert_file = dir.file("absent.pem");
    ByteRing ring(1 << 16);
    auto receiver = Receiver::open(config, 0, ring);
    ASSERT_FALSE(receiver.ok());
    EXPECT_NE(receiver.error().message.find("absent.pem"), std::string::npos)
        << receiver.error().message;
}

INSTANTIATE_TEST_SUITE_P(Engines, TlsReceiverTest,
                         ::testing::Values(ReceiveConfig::Engine::io_uring,
                                           ReceiveConfig::Engine::recvmmsg),
                         [](const auto& info) { return std::string(engine_label(info.param)); });

TEST(ReceiveConfig, TlsKeysAreCheckedTogether) {
    ReceiveConfig config;
    config.tls_key_file = "/nonexistent/key.pem";  // without tls_cert_file
    ConfigErrors errors;
    config.validate(errors);
    EXPECT_EQ(errors.list().size(), 1U);
    ReceiveConfig same_port;
    same_port.tls_cert_file = "/nonexistent/cert.pem";
    same_port.tls_port = same_port.tcp_port;  // and no key file
    ConfigErrors more;
    same_port.validate(more);
    EXPECT_EQ(more.list().size(), 3U);  // the port, the missing key, the missing certificate
}

TEST(ReceiveConfig, MissingTlsCertificateAndCaFilesAreReported) {
    // Before: only the key file was checked, so check-config passed a missing certificate.
    test::TempDir dir;
    const std::string key = dir.file("key.pem");
    {
        std::FILE* f = std::fopen(key.c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fclose(f);
        ::chmod(key.c_str(), 0600);
    }
    ReceiveConfig config;
    config.tls_cert_file = dir.file("no-cert.pem");
    config.tls_key_file = key;
    config.tls_client_ca_file = dir.file("no-ca.pem");
    ConfigErrors errors;
    config.validate(errors);
    ASSERT_EQ(errors.list().size(), 2U);
    EXPECT_NE(errors.list()[0].find("receive.tls_cert_file"), std::string::npos) << errors.list()[0];
    EXPECT_NE(errors.list()[0].find("no-cert.pem"), std::string::npos) << errors.list()[0];
    EXPECT_NE(errors.list()[1].find("receive.tls_client_ca_file"), std::string::npos)
        << errors.list()[1];
}

}  // namespace
}  // namespace cefd
