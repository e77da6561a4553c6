// Syslog over TLS (RFC 5425) through the real cefd into the stand-in, with mutual TLS, and a
// certificate reload on SIGHUP.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/harness.h"
#include "tests/unit/receive/test_pki.h"

namespace cefd::test {
namespace {

struct TlsFiles {
    Identity ca = make_identity("cefd test CA", nullptr, 1);
    Identity server = make_identity("cefd-server-1", &ca, 2);
    Identity client = make_identity("darktrace-appliance", &ca, 3);
    std::string dir;
    explicit TlsFiles(const TempDir& d) : dir(d.path()) {
        write_cert(dir + "/ca.pem", ca.cert.get());
        write_cert(dir + "/server.pem", server.cert.get());
        write_key(dir + "/server.key", server.key.get());
        write_cert(dir + "/client.pem", client.cert.get());
        write_key(dir + "/client.key", client.key.get());
    }
};

/// A plain TCP connection to 127.0.0.1:port (no TLS), or -1.
int connect_plain(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) return fd;
    ::close(fd);
    return -1;
}

/// The [receive] lines of a TLS listener on `port` with the server pair TlsFiles wrote in `dir`.
/// Connects with TLS (client certificate from `files`), sends each line octet-counted (RFC 5425),
/// and returns the common name of the server's certificate.
std::string send_tls(int port, const TlsFiles& files, const std::vector<std::string>& lines) {
    SSL_CTX* context = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    SSL_CTX_load_verify_locations(context, (files.dir + "/ca.pem").c_str(), nullptr);
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_use_certificate_file(context, (files.dir + "/client.pem").c_str(), SSL_FILETYPE_PEM);
    SSL_CTX_use_PrivateKey_file(context, (files.dir + "/client.key").c_str(), SSL_FILETYPE_PEM);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    std::string name;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        SSL* ssl = SSL_new(context);
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) == 1) {
            X509* peer = SSL_get1_peer_certificate(ssl);
            name = common_name_of(peer);
            X509_free(peer);
            std::string all;
            for (const auto& line : lines) all += std::to_string(line.size()) + " " + line;
            SSL_write(ssl, all.data(), static_cast<int>(all.size()));
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
    }
    ::close(fd);
    SSL_CTX_free(context);
    return name;
}

int count_marked(const AzureStandin& azure, const std::string& marker) {
    int n = 0;
    for (const auto& row : azure.rows()) {
        auto it = row.find("AdditionalExtensions");
        if (it != row.end() && it->second.find(marker) != std::string::npos) ++n;
    }
    return n;
}

TEST(Tls, MutualTlsFramesArriveAndSighupReloadsTheCertificate) {
    TempDir dir;
    TlsFiles files(dir);
    AzureStandin azure(dir);
    const int tls_port = free_port();
    Cefd cefd(dir, azure,
              {.receive_extra = tls_receive_lines(dir, tls_port) + "tls_client_ca_file = \"" + dir.file("ca.pem") + "\"\n"});
    std::vector<std::string> lines;
    for (int i = 0; i < 50; ++i)
        lines.push_back("<134>Mar 14 09:15:02 dt-master-01 CEF:0|Darktrace|Enterprise Immune System|6.1|26|Over TLS|7|"
                        "dvc=192.0.2.14 e2etls=first-" + std::to_string(i));
    EXPECT_EQ(send_tls(tls_port, files, lines), "cefd-server-1");
    ASSERT_TRUE(wait_until(std::chrono::seconds(30), [&] { return count_marked(azure, "e2etls=first-") == 50; }))
        << count_marked(azure, "e2etls=first-") << " of 50\n" << cefd.process().err();

    // A new server certificate on disk; SIGHUP makes new connections see it.
    Identity renewed = make_identity("cefd-server-2", &files.ca, 4);
    write_cert(dir.file("server.pem"), renewed.cert.get());
    write_key(dir.file("server.key"), renewed.key.get());
    ::kill(cefd.process().pid(), SIGHUP);
    ASSERT_TRUE(wait_until(std::chrono::seconds(10), [&] { return cefd.metric("cefd_receive_tls_reloads_total") >= 1; }))
        << cefd.process().err();
    std::string seen;
    ASSERT_TRUE(wait_until(std::chrono::seconds(10), [&] {
        seen = send_tls(tls_port, files, {"<134>Mar 14 09:15:03 dt-master-01 CEF:0|Darktrace|Enterprise Immune System|6.1|26|After reload|7|e2etls=second-0"});
        return seen == "cefd-server-2";
    })) << "server certificate after SIGHUP: " << seen;
    EXPECT_EQ(cefd.stop(), 0) << cefd.process().err();
    EXPECT_GE(count_marked(azure, "e2etls=second-"), 1);
}

// A connection evicted for a newcomer while its TLS handshake had not begun was counted as a
// failed handshake (with no log line): an alarm on receive_tls_handshake_failures_total fired for
// what is an eviction. Found in review.
TEST(Tls, AnEvictedHandshakeIsAnEvictionNotAFailedHandshake) {
    TempDir dir;
    TlsFiles files(dir);
    AzureStandin azure(dir);
    const int tls_port = free_port();
    CefdOptions options{.receive_extra = tls_receive_lines(dir, tls_port) +
                                         "max_tcp_connections = 3\ntls_handshake_timeout_ms = 30000\n" +
                                         "tcp_idle_timeout_ms = 60000\n"};
    options.workers = 1;  // one lane: its share is all 3
    Cefd cefd(dir, azure, options);
    const auto connect_raw = [&] {
        const int fd = connect_plain(tls_port);
        EXPECT_GE(fd, 0);
        return fd;
    };
    std::vector<int> silent;
    for (int i = 0; i < 3; ++i) silent.push_back(connect_raw());  // never say ClientHello
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // accepted, and idle long enough to be evicted
    silent.push_back(connect_raw());
    EXPECT_TRUE(wait_until(std::chrono::seconds(10), [&] { return cefd.metric("cefd_receive_tcp_evicted_total") >= 1; }));
    EXPECT_EQ(cefd.metric("cefd_receive_tls_handshake_failures_total"), 0);
    for (const int fd : silent) ::close(fd);
}

// One rate limit covered every handshake failure, so a port scanner's garbage hid, for 10 s, the
// line that says an appliance's certificate failed the check. Found in review.
TEST(Tls, ACertificateFailureIsLoggedEvenRightAfterGarbage) {
    TempDir dir;
    TlsFiles files(dir);
    AzureStandin azure(dir);
    const int tls_port = free_port();
    Cefd cefd(dir, azure,
              {.receive_extra = tls_receive_lines(dir, tls_port) + "tls_client_ca_file = \"" + dir.file("ca.pem") + "\"\n"});
    {  // a scanner: plain text at the TLS port
        const int fd = connect_plain(tls_port);
        ASSERT_GE(fd, 0);
        const std::string garbage = "GET / HTTP/1.0\r\n\r\n";
        ASSERT_EQ(::send(fd, garbage.data(), garbage.size(), MSG_NOSIGNAL), static_cast<ssize_t>(garbage.size()));
        ASSERT_TRUE(wait_until(std::chrono::seconds(10),
                               [&] { return cefd.metric("cefd_receive_tls_handshake_failures_total") >= 1; }));
        ::close(fd);
    }
    // An appliance with a certificate from a CA cefd does not trust (it trusts cefd's).
    TempDir rogue_dir;
    const TlsFiles rogue(rogue_dir);
    write_cert(rogue_dir.file("ca.pem"), files.ca.cert.get());
    EXPECT_EQ(send_tls(tls_port, rogue, {"<134>Mar 14 09:15:02 host CEF:0|V|P|1|2|N|3|e2etls=rogue"}), "cefd-server-1");
    ASSERT_TRUE(wait_until(std::chrono::seconds(10),
                           [&] { return cefd.metric("cefd_receive_tls_handshake_failures_total") >= 2; }));
    const std::string log = cefd.process().err();
    std::size_t lines = 0;
    for (std::size_t at = log.find("TLS handshake with"); at != std::string::npos; at = log.find("TLS handshake with", at + 1))
        ++lines;
    EXPECT_EQ(lines, 2U) << log;
    EXPECT_NE(log.find("certificate"), std::string::npos) << log;
}

}  // namespace
}  // namespace cefd::test
