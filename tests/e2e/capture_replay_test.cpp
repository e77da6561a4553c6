// [capture] in the real cefd, then `cefd-loadgen replay` of what it captured: the replayed
// messages parse to the same rows as the original lines (`cefd parse` on both), and
// --preserve-sources keeps the number of senders.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/e2e/harness.h"

namespace {

using namespace std::chrono_literals;
using cefd::test::AzureStandin;
using cefd::test::Cefd;
using cefd::test::CefdOptions;
using cefd::test::Process;
using cefd::test::TempDir;

std::string loadgen() { return cefd::test::binary_path("tools/loadgen/cefd-loadgen"); }

struct Received {
    std::vector<std::string> datagrams;
    std::set<int> source_ports;
};

/// A UDP socket on 127.0.0.1:0 that the test reads.
class UdpSink {
public:
    UdpSink() : fd_(::socket(AF_INET, SOCK_DGRAM, 0)) {
        const int buffer_bytes = 8 << 20;
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address);
        socklen_t length = sizeof address;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
        port_ = ntohs(address.sin_port);
    }
    ~UdpSink() { ::close(fd_); }
    UdpSink(const UdpSink&) = delete;
    UdpSink& operator=(const UdpSink&) = delete;
    [[nodiscard]] int port() const { return port_; }

    Received receive(std::size_t expected, std::chrono::milliseconds timeout) {
        Received received;
        std::vector<char> buffer(70'000);
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (received.datagrams.size() < expected && std::chrono::steady_clock::now() < deadline) {
            pollfd waiting{fd_, POLLIN, 0};
            if (::poll(&waiting, 1, 100) <= 0) continue;
            sockaddr_in from{};
            socklen_t length = sizeof from;
            const ssize_t got = ::recvfrom(fd_, buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&from), &length);
            if (got < 0) continue;
            received.datagrams.emplace_back(buffer.data(), static_cast<std::size_t>(got));
            received.source_ports.insert(ntohs(from.sin_port));
        }
        return received;
    }

private:
    int fd_;
    int port_ = 0;
};

std::vector<std::string> capture_files(const std::string& dir) {
    std::vector<std::string> files;
    if (!std::filesystem::exists(dir)) return files;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) files.push_back(entry.path().string());
    std::sort(files.begin(), files.end());
    return files;
}

/// `cefd parse FILE`, one row per line, TimeGenerated (the time of parsing) removed, sorted.
std::vector<std::string> parsed_rows(const std::string& file) {
    std::string out;
    EXPECT_EQ(cefd::test::run_command(cefd::test::cefd_binary() + " parse " + file, &out), 0);
    std::vector<std::string> rows;
    std::size_t start = 0;
    while (start < out.size()) {
        std::size_t end = out.find('\n', start);
        if (end == std::string::npos) end = out.size();
        std::string row = out.substr(start, end - start);
        start = end + 1;
        const std::size_t at = row.find("\"TimeGenerated\":\"");
        if (at != std::string::npos) {
            const std::size_t close = row.find('"', at + 17);
            row.erase(at, close + 1 - at + (close + 1 < row.size() && row[close + 1] == ',' ? 1 : 0));
        }
        if (!row.empty()) rows.push_back(row);
    }
    std::sort(rows.begin(), rows.end());
    return rows;
}

TEST(CaptureReplay, ReplayedCaptureParsesToTheSameRowsAsTheOriginalLines) {
    TempDir dir;
    AzureStandin azure(dir);
    const std::string capture_dir = dir.file("capture");
    Cefd cefd(dir, azure, CefdOptions{.extra_toml = "[capture]\ndir = \"" + capture_dir + "\"\n"});
    const std::string original = cefd::test::source_path("tools/loadgen/darktrace-cef-853b.txt");
    const std::vector<std::string> lines = cefd::test::sample_lines(original);
    ASSERT_EQ(lines.size(), 48u);
    // Each line once, from 4 source ports.
    Process send({loadgen(), "--target", "127.0.0.1:" + std::to_string(cefd.port()), "--payload", "853b", "--no-stamp",
                  "--count", "48", "--flows", "4", "--rate", "2000"},
                 dir.path(), "loadgen");
    ASSERT_EQ(send.wait(30s), 0) << send.err();
    ASSERT_TRUE(cefd::test::wait_until(30s, [&] { return azure.row_count() >= 48; })) << "rows: " << azure.row_count();
    EXPECT_EQ(cefd.metric("cefd_capture_messages_total") + cefd.metric("cefd_capture_dropped_total"), 48)
        << "captured " << cefd.metric("cefd_capture_messages_total");
    ASSERT_EQ(cefd.stop(), 0);  // closes the capture file
    const auto files = capture_files(capture_dir);
    ASSERT_EQ(files.size(), 1u);

    UdpSink sink;
    Process replay({loadgen(), "replay", files[0], "--target", "127.0.0.1:" + std::to_string(sink.port()), "--speed",
                    "max"},
                   dir.path(), "replay");
    const Received received = sink.receive(48, 30s);
    ASSERT_EQ(replay.wait(30s), 0) << replay.out() << replay.err();
    ASSERT_EQ(received.datagrams.size(), 48u);
    std::string replayed_text;
    for (const std::string& datagram : received.datagrams) replayed_text += datagram + "\n";
    cefd::test::write_file(dir.file("replayed.log"), replayed_text);
    const auto expected = parsed_rows(original);
    ASSERT_EQ(expected.size(), 48u);
    EXPECT_EQ(parsed_rows(dir.file("replayed.log")), expected);

    // --preserve-sources: one socket per original sender, so 4 source ports again.
    UdpSink second;
    Process preserved({loadgen(), "replay", files[0], "--target", "127.0.0.1:" + std::to_string(second.port()),
                       "--speed", "10x", "--preserve-sources"},
                      dir.path(), "replay-preserved");
    const Received again = second.receive(48, 30s);
    ASSERT_EQ(preserved.wait(60s), 0) << preserved.out() << preserved.err();
    EXPECT_EQ(again.datagrams.size(), 48u);
    EXPECT_EQ(again.source_ports.size(), 4u) << preserved.out();
}

TEST(CaptureReplay, BadReplayFlagsAndFilesAreUsageErrors) {
    TempDir dir;
    const auto run = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {loadgen(), "replay"});
        Process process(args, dir.path(), "replay");
        return process.wait(30s);
    };
    cefd::test::write_file(dir.file("not-a-capture.zst"), "hello");
    EXPECT_EQ(run({}), 2);
    EXPECT_EQ(run({dir.file("not-a-capture.zst")}), 2);
    EXPECT_EQ(run({dir.file("missing.zst")}), 2);
    EXPECT_EQ(run({dir.file("x"), "--speed", "fast"}), 2);
    EXPECT_EQ(run({dir.file("x"), "--proto", "tcp", "--preserve-sources"}), 2);
}

}  // namespace
