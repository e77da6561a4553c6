#include "engine/pipeline/check_startup.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/support.h"

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
