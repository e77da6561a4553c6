#include "engine/pipeline/check_startup.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/pipeline/config.h"
#include "tests/support/support.h"
#include "tests/unit/send/test_cert.h"

namespace cefd {
namespace {

/// A loopback socket bound to an ephemeral port; the port is read back.
struct Bound {
    int fd = -1;
    std::uint16_t port = 0;
    explicit Bound(bool udp) {
        fd = ::socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        if (!udp) {
            EXPECT_EQ(::listen(fd, 1), 0);
        }
        socklen_t length = sizeof addr;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
        port = ntohs(addr.sin_port);
    }
    ~Bound() { ::close(fd); }
};

TEST(PortHolder, NamesThisProcessForItsOwnUdpAndTcpSockets) {
    const std::string me = "pid " + std::to_string(::getpid());
    Bound udp(true);
    Bound tcp(false);
    EXPECT_NE(port_holder(true, udp.port).find(me), std::string::npos) << port_holder(true, udp.port);
    EXPECT_NE(port_holder(false, tcp.port).find(me), std::string::npos) << port_holder(false, tcp.port);
}

TEST(ProbeBind, ReportsAPortInUseWithItsHolderAndAFreeOneAsBindable) {
    Bound udp(true);
    const Listener taken{"receive.udp_port", true, "127.0.0.1", udp.port};
    auto status = probe_bind(taken);
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().code, Errc::address_in_use);
    // This process among the holders (another may hold a UDP socket on the same port number).
    EXPECT_NE(status.error().message.find("is in use by pid "), std::string::npos) << status.error().message;
    EXPECT_NE(status.error().message.find("pid " + std::to_string(::getpid()) + " ("), std::string::npos)
        << status.error().message;
    const Listener other{"receive.udp_port", true, "127.0.0.1", static_cast<std::uint16_t>(test::free_port())};
    EXPECT_TRUE(probe_bind(other));
}

TEST(ProbeBind, ReportsAnAddressThatIsNotLocal) {
    // 192.0.2.1 (TEST-NET-1) is never an address of this machine.
    auto status = probe_bind({"receive.tcp_port", false, "192.0.2.1", static_cast<std::uint16_t>(test::free_port())});
    ASSERT_FALSE(status);
    EXPECT_NE(status.error().message.find("not a local address"), std::string::npos) << status.error().message;
}

TEST(DirWritable, AcceptsAMissingDirUnderAWritableOneAndRefusesOneUnderAFile) {
    test::TempDir dir;
    EXPECT_TRUE(check_dir_writable(dir.file("a/b/c")));
    test::write_file(dir.file("file"), "x");
    auto status = check_dir_writable(dir.file("file") + "/spool");
    ASSERT_FALSE(status);
    EXPECT_NE(status.error().message.find("is not a directory"), std::string::npos) << status.error().message;
}

// Certificate files that exist and are readable but do not load: check-config said ok (it only
// checked they were readable) and run then stopped at start, exit 2, so the unit's ExecStartPre
// and a "check-config && systemctl enable --now" passed. Found in review.
struct CertConfig {
    test::TempDir dir;
    test::CertFiles client = test::make_rsa_cert(dir.path(), "client");
    test::CertFiles server = test::make_rsa_cert(dir.path(), "server");
    std::string text(bool with_tls) const {
        std::string out =
            "[receive]\nlisten = \"127.0.0.1\"\nudp_port = " + std::to_string(with_tls ? 0 : test::free_port()) +
            "\ntcp_port = 0\n";
        if (with_tls)
            out += "tls_port = " + std::to_string(test::free_port()) + "\ntls_cert_file = \"" + server.certificate +
                   "\"\ntls_key_file = \"" + server.key + "\"\n";
        return out + "[metrics]\nlisten = \"\"\n[spool]\ndir = \"" + dir.file("spool") +
               "\"\n[azure]\nendpoint = \"https://x.westeurope-1.ingest.monitor.azure.com\"\n"
               "dcr_id = \"dcr-0123456789abcdef0123456789abcdef\"\nauth = \"client_certificate\"\n"
               "tenant_id = \"t\"\nclient_id = \"c\"\nclient_certificate_file = \"" +
               client.certificate + "\"\nclient_key_file = \"" + client.key + "\"\ndead_letter_dir = \"" +
               dir.file("dl") + "\"\n";
    }
    std::string problems(bool with_tls) const {
        ConfigErrors errors;
        auto config = load_config_text(text(with_tls), "<test>", errors);
        if (!config) return "config did not load: " + (errors.list().empty() ? std::string() : errors.list()[0]);
        check_startup(*config, errors);
        std::string out;
        for (const auto& e : errors.list()) out += e + "\n";
        return out;
    }
};

TEST(CheckStartup, LoadsTheCertificatesRunWouldLoad) {
    CertConfig t;
    EXPECT_EQ(t.problems(true), "") << "good files must pass";

    test::write_file(t.client.certificate, "not a certificate\n", 0644);
    EXPECT_NE(t.problems(false).find("azure.client_certificate_file: "), std::string::npos) << t.problems(false);

    // The client key of another certificate.
    CertConfig other;
    test::write_file(other.client.key, test::read_file(other.server.key), 0600);
    EXPECT_NE(other.problems(false).find("azure.client_key_file: "), std::string::npos) << other.problems(false);
    EXPECT_NE(other.problems(false).find("is not the key"), std::string::npos) << other.problems(false);

    CertConfig tls;
    test::write_file(tls.server.certificate, "not a certificate\n", 0644);
    EXPECT_NE(tls.problems(true).find("receive.tls_cert_file: "), std::string::npos) << tls.problems(true);
}

TEST(FileLimit, CountsConnectionsAndTwoDescriptorsPerSpoolSegment) {
    Config config;
    config.runtime.workers = 1;
    config.receive.tcp_max_connections = 1000;
    config.spool.max_bytes = 100ULL << 20;
    config.spool.segment_bytes = 10U << 20;
    const std::uint64_t base = file_limit_needed(config);
    config.receive.tcp_max_connections = 2000;
    EXPECT_EQ(file_limit_needed(config), base + 1000);
    config.spool.segment_bytes = 5U << 20;  // twice the segments
    EXPECT_EQ(file_limit_needed(config), base + 1000 + 2 * 10);
}

TEST(InstanceLock, RefusesASecondLockOnTheSamePortsNamingThisProcess) {
    test::TempDir dir;
    Config config;
    config.spool.dir = dir.file("spool");
    config.receive.udp_port = static_cast<std::uint16_t>(test::free_port());
    config.receive.tcp_port = config.receive.udp_port;
    config.metrics.listen.clear();
    auto first = InstanceLock::acquire(config);
    ASSERT_TRUE(first) << first.error().describe();
    auto second = InstanceLock::acquire(config);
    ASSERT_FALSE(second);
    EXPECT_NE(second.error().message.find("another cefd (pid " + std::to_string(::getpid())), std::string::npos)
        << second.error().message;
    Config elsewhere = config;
    elsewhere.receive.udp_port = static_cast<std::uint16_t>(test::free_port());
    elsewhere.receive.tcp_port = elsewhere.receive.udp_port;
    EXPECT_TRUE(InstanceLock::acquire(elsewhere)) << "other ports are another instance's business";
}

}  // namespace
}  // namespace cefd
