// A generator on another machine: its datagrams leave through a device whose queue can fill.
// The kernel then dropped them and still told cefd-loadgen they were sent (only the host's Udp
// SndbufErrors counted them), so the generator's own loss read as the target's: a sizing run
// from a remote box blamed cefd. Now the loadgen's UDP sockets ask for the error (IP_RECVERR)
// and wait and retry, so what it reports sent left the host. The same for `cefd-loadgen replay`.
//
// Two network namespaces made for the test, joined by a veth pair whose sending end has a
// 20 Mbit/s token bucket with a small queue; the loadgen sends flat out from one, the test reads
// in the other. Needs root and iproute2 (`ip`, `tc`); skipped without them.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <simdjson.h>

#include "tests/e2e/harness.h"
#include "tests/support/support.h"

namespace {

using namespace std::chrono_literals;
using cefd::test::Process;
using cefd::test::run_command;
using cefd::test::TempDir;

/// Two namespaces and the veth pair between them, removed on destruction.
class Namespaces {
public:
    Namespaces() : sender_("cefdq-s" + std::to_string(::getpid())), receiver_("cefdq-r" + std::to_string(::getpid())) {
        const std::string veth_s = "vq" + std::to_string(::getpid()) + "s";
        const std::string veth_r = "vq" + std::to_string(::getpid()) + "r";
        const std::string setup =
            "ip netns add " + sender_ + " && ip netns add " + receiver_ + " && ip link add " + veth_s + " netns " +
            sender_ + " type veth peer name " + veth_r + " netns " + receiver_ + " && ip -n " + sender_ +
            " addr add 10.231.7.1/30 dev " + veth_s + " && ip -n " + sender_ + " link set " + veth_s + " up && ip -n " +
            receiver_ + " addr add 10.231.7.2/30 dev " + veth_r + " && ip -n " + receiver_ + " link set " + veth_r +
            " up && tc -n " + sender_ + " qdisc replace dev " + veth_s + " root tbf rate 20mbit burst 16kb limit 32kb";
        ok_ = run_command(setup + " 2>/dev/null") == 0;
        // A permanent neighbour entry: datagrams sent while ARP resolves wait in a queue that
        // drops silently when full, which would look like the loss this test is about.
        std::string mac;
        ok_ = ok_ && run_command("ip -n " + receiver_ + " -o link show " + veth_r +
                                     " | sed -n 's/.*link\\/ether \\([0-9a-f:]*\\).*/\\1/p'",
                                 &mac) == 0;
        while (!mac.empty() && (mac.back() == '\n' || mac.back() == ' ')) mac.pop_back();
        ok_ = ok_ && !mac.empty() &&
              run_command("ip -n " + sender_ + " neigh replace 10.231.7.2 lladdr " + mac + " dev " + veth_s +
                          " nud permanent 2>/dev/null") == 0;
    }
    ~Namespaces() { run_command("ip netns del " + sender_ + " 2>/dev/null; ip netns del " + receiver_ + " 2>/dev/null"); }
    Namespaces(const Namespaces&) = delete;
    Namespaces& operator=(const Namespaces&) = delete;

    [[nodiscard]] bool ok() const { return ok_; }
    [[nodiscard]] const std::string& sender() const { return sender_; }

    /// A UDP socket bound to 10.231.7.2:port in the receiving namespace (-1 on failure).
    [[nodiscard]] int bind_receiver(int port) const {
        const int own = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        const int other = ::open(("/run/netns/" + receiver_).c_str(), O_RDONLY | O_CLOEXEC);
        int fd = -1;
        if (own >= 0 && other >= 0 && ::setns(other, CLONE_NEWNET) == 0) {
            fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            const int buffer = 8 << 20;
            ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer);
            sockaddr_in address{};
            address.sin_family = AF_INET;
            address.sin_port = htons(static_cast<std::uint16_t>(port));
            ::inet_pton(AF_INET, "10.231.7.2", &address.sin_addr);
            if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
                ::close(fd);
                fd = -1;
            }
            EXPECT_EQ(::setns(own, CLONE_NEWNET), 0);  // the socket stays in the other namespace
        }
        if (own >= 0) ::close(own);
        if (other >= 0) ::close(other);
        return fd;
    }

private:
    std::string sender_;
    std::string receiver_;
    bool ok_ = false;
};

/// The `ip` binary, or "" (then the test skips): root and iproute2 are needed.
std::string ip_binary() {
    std::string ip;
    if (::geteuid() != 0 || run_command("command -v tc >/dev/null && command -v ip", &ip) != 0) return "";
    while (!ip.empty() && (ip.back() == '\n' || ip.back() == ' ')) ip.pop_back();
    return ip;
}

/// Datagrams read on `fd` until `sender` has ended and nothing came for 2 s (bounded: the sender
/// ends, and its retries of one burst are bounded).
int count_until_quiet(int fd, Process& sender) {
    int received = 0;
    for (auto quiet_since = std::chrono::steady_clock::now();
         std::chrono::steady_clock::now() - quiet_since < 2s || sender.running();) {
        pollfd ready{.fd = fd, .events = POLLIN, .revents = 0};
        if (::poll(&ready, 1, 100) == 1) {
            char buffer[65'536];
            while (::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT) > 0) ++received;
            quiet_since = std::chrono::steady_clock::now();
        }
    }
    return received;
}

constexpr int port = 5514;
constexpr int events = 3'000;

TEST(LoadgenDeviceQueue, WhatItReportsSentLeftTheHostWhenTheDeviceQueueIsFull) {
    const std::string ip = ip_binary();
    if (ip.empty()) GTEST_SKIP() << "needs root and iproute2 (ip, tc) for network namespaces";
    const Namespaces namespaces;
    if (!namespaces.ok()) GTEST_SKIP() << "cannot create network namespaces here";
    const int fd = namespaces.bind_receiver(port);
    ASSERT_GE(fd, 0);

    TempDir dir;
    // Flat out: 3,000 853-byte datagrams take a 20 Mbit/s link about a second, far longer than
    // the loadgen takes to hand them to the kernel.
    Process loadgen({ip, "netns", "exec", namespaces.sender(), cefd::test::binary_path("tools/loadgen/cefd-loadgen"),
                     "--proto", "udp", "--target", "10.231.7.2:" + std::to_string(port), "--rate", "0", "--count",
                     std::to_string(events), "--payload", "853b"},
                    dir.path(), "loadgen");
    const int received = count_until_quiet(fd, loadgen);
    ::close(fd);
    ASSERT_EQ(loadgen.wait(30s), 0) << loadgen.err();

    simdjson::dom::parser parser;
    simdjson::dom::element report;
    const std::string out = loadgen.out();
    ASSERT_EQ(parser.parse(out).get(report), simdjson::SUCCESS) << out;
    const std::int64_t sent = report["sent"].get_int64().value();
    const std::int64_t send_errors = report["send_errors"].get_int64().value();
    EXPECT_EQ(sent + send_errors, events) << out;
    // The veth pair loses nothing else, so every datagram reported sent must have arrived.
    EXPECT_EQ(received, sent) << out;
    EXPECT_GT(received, 0) << out;
}

// `replay` sent each datagram once and counted only errors the kernel returned: the same
// silent loss at a full device queue.
TEST(LoadgenDeviceQueue, ReplayWaitsForAFullDeviceQueueToo) {
    const std::string ip = ip_binary();
    if (ip.empty()) GTEST_SKIP() << "needs root and iproute2 (ip, tc) for network namespaces";
    const Namespaces namespaces;
    if (!namespaces.ok()) GTEST_SKIP() << "cannot create network namespaces here";

    // A capture of `events` messages, made by cefd on loopback.
    TempDir dir;
    cefd::test::AzureStandin azure(dir);
    const std::string capture_dir = dir.file("capture");
    {
        cefd::test::Cefd cefd(dir, azure, cefd::test::CefdOptions{.extra_toml = "[capture]\ndir = \"" + capture_dir + "\"\n"});
        Process send({cefd::test::binary_path("tools/loadgen/cefd-loadgen"), "--target",
                      "127.0.0.1:" + std::to_string(cefd.port()), "--payload", "853b", "--count", std::to_string(events),
                      "--rate", "20000"},
                     dir.path(), "send");
        ASSERT_EQ(send.wait(60s), 0) << send.err();
        ASSERT_TRUE(cefd::test::wait_until(60s, [&] {
            return cefd.metric("cefd_capture_messages_total") + cefd.metric("cefd_capture_dropped_total") >= events;
        }));
        ASSERT_EQ(cefd.metric("cefd_capture_dropped_total"), 0);
        ASSERT_EQ(cefd.stop(), 0);  // closes the capture file
    }
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(capture_dir)) files.push_back(entry.path().string());
    ASSERT_EQ(files.size(), 1u);

    const int fd = namespaces.bind_receiver(port);
    ASSERT_GE(fd, 0);
    Process replay({ip, "netns", "exec", namespaces.sender(), cefd::test::binary_path("tools/loadgen/cefd-loadgen"),
                    "replay", files[0], "--target", "10.231.7.2:" + std::to_string(port), "--speed", "max"},
                   dir.path(), "replay");
    const int received = count_until_quiet(fd, replay);
    ::close(fd);
    ASSERT_EQ(replay.wait(60s), 0) << replay.out() << replay.err();
    simdjson::dom::parser parser;
    simdjson::dom::element report;
    const std::string out = replay.out();
    ASSERT_EQ(parser.parse(out).get(report), simdjson::SUCCESS) << out;
    EXPECT_EQ(report["replayed"].get_int64().value(), events) << out;
    EXPECT_EQ(report["send_errors"].get_int64().value(), 0) << out;
    EXPECT_EQ(received, events) << out;
}

}  // namespace
