// cefd-loadgen, the real binary: what arrives on a UDP or TCP socket the test reads, stamping,
// framing, pacing (counts only, never timing), and --verify's delivered/lost/duplicated counts.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <initializer_list>
#include <map>
#include <set>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/support.h"

namespace {

using namespace std::chrono_literals;
using cefd::test::Process;
using cefd::test::TempDir;

std::string loadgen_path() { return cefd::test::binary_path("tools/loadgen/cefd-loadgen"); }

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    [[nodiscard]] int get() const { return fd_; }

private:
    int fd_;
};

int bind_loopback(int fd) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    return ntohs(address.sin_port);
}

/// Reads datagrams until `expected` arrived or the deadline passed.
std::vector<std::string> receive_datagrams(int fd, std::size_t expected, std::chrono::milliseconds timeout) {
    std::vector<std::string> datagrams;
    std::vector<char> buffer(70'000);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (datagrams.size() < expected && std::chrono::steady_clock::now() < deadline) {
        pollfd waiting{fd, POLLIN, 0};
        if (::poll(&waiting, 1, 100) <= 0) continue;
        const ssize_t got = ::recv(fd, buffer.data(), buffer.size(), 0);
        if (got >= 0) datagrams.emplace_back(buffer.data(), static_cast<std::size_t>(got));
    }
    return datagrams;
}

/// Accepts up to `connections` connections and reads each to EOF (or the deadline).
std::string receive_stream(int listener, int connections, std::chrono::milliseconds timeout) {
    // Each connection's bytes are kept apart and appended whole when it closes: reads from
    // several connections interleave, so one shared buffer would cut lines in the middle.
    std::string all;
    std::map<int, std::string> open;
    int accepted = 0;
    std::vector<char> buffer(1 << 16);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while ((accepted < connections || !open.empty()) && std::chrono::steady_clock::now() < deadline) {
        std::vector<pollfd> waiting{{listener, POLLIN, 0}};
        for (const auto& [fd, bytes] : open) waiting.push_back({fd, POLLIN, 0});
        if (::poll(waiting.data(), waiting.size(), 100) <= 0) continue;
        if ((waiting[0].revents & POLLIN) != 0 && accepted < connections) {
            const int fd = ::accept(listener, nullptr, nullptr);
            if (fd >= 0) {
                open.emplace(fd, std::string());
                ++accepted;
            }
        }
        for (std::size_t i = 1; i < waiting.size(); ++i) {
            if (waiting[i].revents == 0) continue;
            const ssize_t got = ::recv(waiting[i].fd, buffer.data(), buffer.size(), 0);
            if (got > 0) {
                open[waiting[i].fd].append(buffer.data(), static_cast<std::size_t>(got));
            } else {
                ::close(waiting[i].fd);
                all += open[waiting[i].fd];
                open.erase(waiting[i].fd);
            }
        }
    }
    for (const auto& [fd, bytes] : open) {
        ::close(fd);
        all += bytes;
    }
    return all;
}

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (start < text.size()) {
        const std::size_t end = text.find(separator, start);
        if (end == std::string::npos) {
            parts.push_back(text.substr(start));
            break;
        }
        parts.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return parts;
}

/// The sequence number of a stamped event, or -1.
long long sequence_of(const std::string& event, const std::string& run_id) {
    const std::string stamp = " cefdseq=" + run_id + "-";
    const std::size_t at = event.rfind(stamp);
    if (at == std::string::npos) return -1;
    return std::stoll(event.substr(at + stamp.size()));
}

std::uint64_t json_number(const std::string& json, const std::string& key) {
    const std::size_t at = json.find("\"" + key + "\":");
    if (at == std::string::npos) return ~0ull;
    return std::stoull(json.substr(at + key.size() + 3));
}

double json_double(const std::string& json, const std::string& key) {
    const std::size_t at = json.find("\"" + key + "\":");
    if (at == std::string::npos) return -1;
    return std::stod(json.substr(at + key.size() + 3));
}

/// A datagram with the kernel's receive time (SO_TIMESTAMPNS) and its sender's port.
struct Arrival {
    std::string payload;
    std::int64_t kernel_ns = 0;
    int source_port = 0;
};

/// Reads datagrams with kernel timestamps until the socket is quiet for `quiet` after the
/// first one, or `timeout` passes.
std::vector<Arrival> receive_timestamped(int fd, std::chrono::milliseconds quiet, std::chrono::milliseconds timeout) {
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    std::vector<Arrival> arrivals;
    std::vector<char> buffer(70'000);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto last = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd waiting{fd, POLLIN, 0};
        if (::poll(&waiting, 1, 50) <= 0) {
            if (!arrivals.empty() && std::chrono::steady_clock::now() - last > quiet) break;
            continue;
        }
        sockaddr_in from{};
        iovec vector{buffer.data(), buffer.size()};
        alignas(cmsghdr) char control[128];
        msghdr message{};
        message.msg_name = &from;
        message.msg_namelen = sizeof from;
        message.msg_iov = &vector;
        message.msg_iovlen = 1;
        message.msg_control = control;
        message.msg_controllen = sizeof control;
        const ssize_t got = ::recvmsg(fd, &message, 0);
        if (got < 0) continue;
        Arrival arrival{.payload = std::string(buffer.data(), static_cast<std::size_t>(got)),
                        .source_port = ntohs(from.sin_port)};
        for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr; header = CMSG_NXTHDR(&message, header)) {
            if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_TIMESTAMPNS) {
                timespec at{};
                std::memcpy(&at, CMSG_DATA(header), sizeof at);
                arrival.kernel_ns = static_cast<std::int64_t>(at.tv_sec) * 1'000'000'000 + at.tv_nsec;
            }
        }
        arrivals.push_back(std::move(arrival));
        last = std::chrono::steady_clock::now();
    }
    return arrivals;
}

Fd big_udp_receiver(int& port) {
    Fd receiver(::socket(AF_INET, SOCK_DGRAM, 0));
    const int buffer_bytes = 32 << 20;
    // FORCE works as root (past net.core.rmem_max); the plain option is the fallback.
    if (::setsockopt(receiver.get(), SOL_SOCKET, SO_RCVBUFFORCE, &buffer_bytes, sizeof buffer_bytes) != 0) {
        ::setsockopt(receiver.get(), SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
    }
    port = bind_loopback(receiver.get());
    return receiver;
}

int run_loadgen(const TempDir& dir, std::vector<std::string> args, std::string* out = nullptr) {
    args.insert(args.begin(), loadgen_path());
    Process process(args, dir.path(), "loadgen");
    const int code = process.wait(60s);
    if (out != nullptr) *out = process.out();
    return code;
}

std::vector<std::string> sample_lines_trimmed() {
    std::vector<std::string> lines = cefd::test::sample_lines(cefd::test::source_path("tests/data/synthetic-darktrace-cef.log"));
    for (std::string& line : lines) {
        while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.pop_back();
    }
    return lines;
}

TEST(LoadgenUdp, StampsEveryEventWithAUniqueSequence) {
    TempDir dir;
    Fd receiver(::socket(AF_INET, SOCK_DGRAM, 0));
    const int buffer_bytes = 8 << 20;
    ::setsockopt(receiver.get(), SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
    const int port = bind_loopback(receiver.get());
    constexpr std::size_t count = 200;
    Process loadgen({loadgen_path(), "--target", "127.0.0.1:" + std::to_string(port), "--count", std::to_string(count),
                     "--rate", "4000", "--run-id", "udp1"},
                    dir.path(), "loadgen");
    const auto datagrams = receive_datagrams(receiver.get(), count, 20s);
    ASSERT_EQ(loadgen.wait(20s), 0) << loadgen.err();
    ASSERT_EQ(datagrams.size(), count);
    const auto lines = sample_lines_trimmed();
    std::set<long long> sequences;
    for (const std::string& datagram : datagrams) {
        const long long sequence = sequence_of(datagram, "udp1");
        ASSERT_GE(sequence, 0) << datagram;
        sequences.insert(sequence);
        // The payload is the sample line, trailing whitespace removed, then the stamp.
        const std::string& line = lines[static_cast<std::size_t>(sequence) % lines.size()];
        EXPECT_EQ(datagram, line + " cefdseq=udp1-" + std::to_string(sequence));
    }
    EXPECT_EQ(sequences.size(), count);
    EXPECT_EQ(*sequences.rbegin(), static_cast<long long>(count - 1));
    const std::string out = loadgen.out();
    EXPECT_EQ(json_number(out, "sent"), count) << out;
    EXPECT_NE(out.find("\"run_id\":\"udp1\""), std::string::npos) << out;
    EXPECT_NE(out.find("\"proto\":\"udp\""), std::string::npos) << out;
}

TEST(LoadgenTcp, NewlineFramingOverSeveralConnectionsNumbersWithoutGaps) {
    TempDir dir;
    Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
    const int port = bind_loopback(listener.get());
    ASSERT_EQ(::listen(listener.get(), 16), 0);
    Process loadgen({loadgen_path(), "--proto", "tcp", "--target", "127.0.0.1:" + std::to_string(port), "--count",
                     "3000", "--senders", "3", "--run-id", "tcp1"},
                    dir.path(), "loadgen");
    const std::string stream = receive_stream(listener.get(), 3, 20s);
    ASSERT_EQ(loadgen.wait(20s), 0) << loadgen.err();
    ASSERT_FALSE(stream.empty());
    EXPECT_EQ(stream.back(), '\n');
    std::set<long long> sequences;
    for (const std::string& line : split(stream, '\n')) sequences.insert(sequence_of(line, "tcp1"));
    EXPECT_EQ(sequences.size(), 3000u);
    EXPECT_EQ(*sequences.begin(), 0);
    EXPECT_EQ(*sequences.rbegin(), 2999);
    EXPECT_EQ(json_number(loadgen.out(), "sent"), 3000u) << loadgen.out();
}

TEST(LoadgenTcp, OctetCountingFramesMatchTheirLengths) {
    TempDir dir;
    Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
    const int port = bind_loopback(listener.get());
    ASSERT_EQ(::listen(listener.get(), 4), 0);
    Process loadgen({loadgen_path(), "--proto", "tcp", "--framing", "octet", "--target",
                     "127.0.0.1:" + std::to_string(port), "--count", "100", "--run-id", "oc"},
                    dir.path(), "loadgen");
    const std::string stream = receive_stream(listener.get(), 1, 20s);
    ASSERT_EQ(loadgen.wait(20s), 0) << loadgen.err();
    std::size_t at = 0;
    std::set<long long> sequences;
    // Bounded: each frame advances `at`; 1000 is far more than the 100 expected.
    for (int frames = 0; frames < 1000 && at < stream.size(); ++frames) {
        const std::size_t space = stream.find(' ', at);
        ASSERT_NE(space, std::string::npos);
        const std::size_t length = std::stoul(stream.substr(at, space - at));
        ASSERT_LE(space + 1 + length, stream.size());
        const std::string frame = stream.substr(space + 1, length);
        EXPECT_EQ(frame.find('\n'), std::string::npos);
        sequences.insert(sequence_of(frame, "oc"));
        at = space + 1 + length;
    }
    EXPECT_EQ(at, stream.size());
    EXPECT_EQ(sequences.size(), 100u);
    EXPECT_EQ(sequences.count(-1), 0u);
}

TEST(LoadgenTcp, NoStampSendsFileLinesUnchangedAndCycles) {
    TempDir dir;
    cefd::test::write_file(dir.file("lines.txt"), "# a comment\nfirst line  \n\nsecond line\n");
    Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
    const int port = bind_loopback(listener.get());
    ASSERT_EQ(::listen(listener.get(), 4), 0);
    Process loadgen({loadgen_path(), "--proto", "tcp", "--target", "127.0.0.1:" + std::to_string(port), "--file",
                     dir.file("lines.txt"), "--count", "5", "--no-stamp"},
                    dir.path(), "loadgen");
    const std::string stream = receive_stream(listener.get(), 1, 20s);
    ASSERT_EQ(loadgen.wait(20s), 0) << loadgen.err();
    EXPECT_EQ(stream, "first line\nsecond line\nfirst line\nsecond line\nfirst line\n");
}

TEST(LoadgenPacing, RateLimitedAndDurationRunsSendWhatTheyReport) {
    TempDir dir;
    Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
    const int port = bind_loopback(listener.get());
    ASSERT_EQ(::listen(listener.get(), 4), 0);
    {
        Process loadgen({loadgen_path(), "--proto", "tcp", "--target", "127.0.0.1:" + std::to_string(port), "--rate",
                         "300", "--count", "60", "--run-id", "r"},
                        dir.path(), "rate");
        const std::string stream = receive_stream(listener.get(), 1, 20s);
        ASSERT_EQ(loadgen.wait(20s), 0) << loadgen.err();
        EXPECT_EQ(split(stream, '\n').size(), 60u);
        EXPECT_EQ(json_number(loadgen.out(), "sent"), 60u) << loadgen.out();
    }
    {
        Process loadgen({loadgen_path(), "--proto", "tcp", "--target", "127.0.0.1:" + std::to_string(port), "--rate",
                         "2000", "--duration", "0.3", "--run-id", "d"},
                        dir.path(), "duration");
        const std::string stream = receive_stream(listener.get(), 1, 20s);
        ASSERT_EQ(loadgen.wait(20s), 0) << loadgen.err();
        const std::uint64_t sent = json_number(loadgen.out(), "sent");
        EXPECT_GT(sent, 0u);
        EXPECT_EQ(split(stream, '\n').size(), sent);
    }
}

TEST(LoadgenVerify, CountsLostAndDuplicatedEventsOfThisRunOnly) {
    TempDir dir;
    cefd::test::write_file(dir.file("rows.jsonl"),
                           R"({"AdditionalExtensions":"a=b;cefdseq=run7-0"})" "\n"
                           R"({"AdditionalExtensions":"cefdseq=run7-1"})" "\n"
                           R"({"AdditionalExtensions":"cefdseq=run7-1"})" "\n"
                           R"({"AdditionalExtensions":"cefdseq=run7-3;x=y"})" "\n"
                           R"({"AdditionalExtensions":"cefdseq=run77-2"})" "\n"
                           R"({"AdditionalExtensions":"cefdseq=other-2"})" "\n"
                           R"({"AdditionalExtensions":"cefdseq=run7-99"})" "\n");
    std::string out;
    EXPECT_EQ(run_loadgen(dir, {"--verify-only", "--verify", dir.file("rows.jsonl"), "--run-id", "run7", "--count", "4",
                                "--wait-s", "0"},
                          &out),
              1);
    EXPECT_EQ(json_number(out, "sent"), 4u) << out;
    EXPECT_EQ(json_number(out, "delivered"), 3u) << out;
    EXPECT_EQ(json_number(out, "lost"), 1u) << out;
    EXPECT_EQ(json_number(out, "duplicated"), 1u) << out;
    EXPECT_EQ(run_loadgen(dir, {"--verify-only", "--verify", dir.file("rows.jsonl"), "--run-id", "run7", "--count", "2",
                                "--wait-s", "0"},
                          &out),
              0);
    EXPECT_EQ(json_number(out, "lost"), 0u) << out;
}

TEST(LoadgenVerify, WaitsForRowsThatArriveLater) {
    TempDir dir;
    const std::string rows = dir.file("rows.jsonl");
    cefd::test::write_file(rows, R"({"AdditionalExtensions":"cefdseq=late-0"})" "\n" R"({"AdditionalExtensions":"cefd)");
    Process verifier({loadgen_path(), "--verify-only", "--verify", rows, "--run-id", "late", "--count", "2",
                      "--wait-s", "20"},
                     dir.path(), "verify");
    {
        std::ofstream append(rows, std::ios::app);  // finishes the half-written row
        append << "seq=late-1\"}\n";
    }
    ASSERT_EQ(verifier.wait(30s), 0) << verifier.out() << verifier.err();
    EXPECT_EQ(json_number(verifier.out(), "delivered"), 2u) << verifier.out();
}

TEST(LoadgenUsage, BadFlagsExit2) {
    TempDir dir;
    EXPECT_EQ(run_loadgen(dir, {"--proto", "sctp"}), 2);
    EXPECT_EQ(run_loadgen(dir, {"--frobnicate"}), 2);
    EXPECT_EQ(run_loadgen(dir, {"--verify-only", "--verify", dir.file("x")}), 2);  // needs --run-id and --count
    EXPECT_EQ(run_loadgen(dir, {"--target", "127.0.0.1"}), 2);
    EXPECT_EQ(run_loadgen(dir, {"--file", dir.file("missing")}), 2);
}

// The offered rate, measured by the receiver: kernel receive timestamps and the events' own
// sequence numbers over the middle of a 3-second run, so neither the test's reading speed nor
// a datagram dropped by a busy kernel changes the figure. A loaded 2-core box can stall the
// sender for a moment, so a rate that misses is measured once more before the test fails.
double measured_rate(int rate) {
    int port = 0;
    Fd receiver = big_udp_receiver(port);
    TempDir dir;
    Process loadgen({loadgen_path(), "--target", "127.0.0.1:" + std::to_string(port), "--payload", "853b", "--rate",
                     std::to_string(rate), "--duration", "3", "--run-id", "rate"},
                    dir.path(), "loadgen");
    const std::vector<Arrival> arrivals = receive_timestamped(receiver.get(), 1s, 20s);
    EXPECT_EQ(loadgen.wait(20s), 0) << loadgen.err();
    if (arrivals.size() < 10) return 0;
    const std::int64_t start = arrivals.front().kernel_ns;
    std::int64_t first_ns = 0, last_ns = 0;
    long long first_sequence = -1, last_sequence = -1;
    for (const Arrival& arrival : arrivals) {
        if (arrival.kernel_ns < start + 500'000'000 || arrival.kernel_ns > start + 2'500'000'000) continue;
        const long long sequence = sequence_of(arrival.payload, "rate");
        if (first_sequence < 0) {
            first_sequence = sequence;
            first_ns = arrival.kernel_ns;
        }
        last_sequence = sequence;
        last_ns = arrival.kernel_ns;
    }
    if (last_ns <= first_ns) return 0;
    return static_cast<double>(last_sequence - first_sequence) * 1e9 / static_cast<double>(last_ns - first_ns);
}

TEST(LoadgenRate, OfferedRateWithinFivePercentMeasuredByTheReceiver) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    // A sanitized generator on a busy 2-core box cannot always offer 50k/s; the rate is what is
    // tested, not the sanitizer's speed (the release suite runs all three).
    const std::initializer_list<int> rates = {1'000, 10'000};
#else
    const std::initializer_list<int> rates = {1'000, 10'000, 50'000};
#endif
    for (const int rate : rates) {
        double measured = measured_rate(rate);
        if (std::abs(measured - rate) > 0.05 * rate) measured = measured_rate(rate);  // once more, see above
        EXPECT_NEAR(measured, rate, 0.05 * rate) << "rate " << rate;
    }
}

TEST(LoadgenUdp, FlowsSpreadEventsOverManySourcePorts) {
    int port = 0;
    Fd receiver = big_udp_receiver(port);
    TempDir dir;
    std::string out;
    ASSERT_EQ(run_loadgen(dir, {"--target", "127.0.0.1:" + std::to_string(port), "--count", "2000", "--senders", "2",
                                "--flows", "8", "--rate", "20000"},
                          &out),
              0);
    const std::vector<Arrival> arrivals = receive_timestamped(receiver.get(), 300ms, 10s);
    std::set<int> ports;
    for (const Arrival& arrival : arrivals) ports.insert(arrival.source_port);
    EXPECT_EQ(ports.size(), 8u) << out;
    EXPECT_GT(json_double(out, "loadgen_cpu_us_per_event"), 0) << out;
}

TEST(LoadgenTemplates, SameSeedSameEventsAndARealisticSizeMix) {
    const auto send = [](const std::string& seed) {
        int port = 0;
        Fd receiver = big_udp_receiver(port);
        TempDir dir;
        EXPECT_EQ(run_loadgen(dir, {"--target", "127.0.0.1:" + std::to_string(port), "--payload", "templates", "--seed",
                                    seed, "--count", "500", "--no-stamp", "--rate", "20000"}),
                  0);
        std::vector<std::string> events;
        for (Arrival& arrival : receive_timestamped(receiver.get(), 300ms, 10s)) events.push_back(std::move(arrival.payload));
        return events;
    };
    const std::vector<std::string> first = send("7");
    ASSERT_EQ(first.size(), 500u);
    EXPECT_EQ(send("7"), first);
    EXPECT_NE(send("8"), first);
    std::map<std::string, std::size_t> kinds;
    std::size_t short_events = 0, breach_sized = 0, long_events = 0;
    for (const std::string& event : first) {
        ASSERT_EQ(event.rfind("<134>", 0), 0u) << event;
        if (event.find("|AI Analyst|") != std::string::npos) ++kinds["ai_analyst"];
        else if (event.find("|System/System|") != std::string::npos) ++kinds["system"];
        else if (event.find("CEF:0|Darktrace|DCIP|") != std::string::npos) ++kinds["breach"];
        if (event.size() < 400) ++short_events;
        else if (event.size() >= 700 && event.size() <= 1100) ++breach_sized;
        else if (event.size() >= 1500) ++long_events;
    }
    EXPECT_EQ(kinds["ai_analyst"] + kinds["system"] + kinds["breach"], first.size());
    EXPECT_GT(kinds["breach"], first.size() / 2);
    EXPECT_GT(short_events, 0u);
    EXPECT_GT(breach_sized, first.size() / 2);
    EXPECT_GT(long_events, 0u);
}

TEST(LoadgenVerify, LatencyFromTheAcceptLogIsNonNegativeAndOrdered) {
    TempDir dir;
    const std::string rows = dir.file("rows.jsonl");
    // Send times in µs from T = 1e15 ns; the accept log says request 1 (2 rows) was stored at
    // T + 10 ms and request 2 (2 rows) at T + 100 ms. The last row has no accept line yet.
    cefd::test::write_file(rows, R"({"AdditionalExtensions":"cefdseq=lat-0;cefdts=1000000000000"})" "\n"
                                 R"({"AdditionalExtensions":"cefdseq=lat-1;cefdts=1000000004000"})" "\n"
                                 R"({"AdditionalExtensions":"cefdseq=lat-1;cefdts=1000000004000"})" "\n"
                                 R"({"AdditionalExtensions":"cefdseq=lat-2;cefdts=1000000050000"})" "\n"
                                 R"({"AdditionalExtensions":"cefdseq=lat-3;cefdts=1000000099000"})" "\n");
    cefd::test::write_file(rows + ".accept", "2 1000000010000000\n2 1000000100000000\n");
    std::string out;
    EXPECT_EQ(run_loadgen(dir, {"--verify-only", "--verify", rows, "--run-id", "lat", "--count", "4", "--wait-s", "0"},
                          &out),
              0)
        << out;
    EXPECT_EQ(json_number(out, "delivered"), 4u) << out;
    EXPECT_EQ(json_number(out, "duplicated"), 1u) << out;
    EXPECT_EQ(json_number(out, "latency_samples"), 3u) << out;  // lat-3 has no accept line yet
    const double p50 = json_double(out, "latency_p50_ms");
    const double p99 = json_double(out, "latency_p99_ms");
    const double max = json_double(out, "latency_max_ms");
    EXPECT_DOUBLE_EQ(p50, 10.0) << out;  // of 10 (lat-0), 6 (lat-1: 10 - 4) and 50 (lat-2: 100 - 50)
    EXPECT_DOUBLE_EQ(max, 50.0) << out;
    EXPECT_GE(p50, 0);
    EXPECT_LE(p50, p99);
    EXPECT_LE(p99, max);
}

// Rows "accepted" long before they were sent: the accept log belongs to another stand-in run.
// They were rounded to 0 ms latency; now they are left out and counted (latency_mismatched).
TEST(LoadgenVerify, RowsAcceptedBeforeTheyWereSentAreCountedAsMismatched) {
    TempDir dir;
    const std::string rows = dir.file("rows.jsonl");
    // Sent at T + 1 s and T + 1.001 s; the (older) accept log says stored at T and T + 2 ms.
    cefd::test::write_file(rows, R"({"AdditionalExtensions":"cefdseq=mm-0;cefdts=1000001000000"})" "\n"
                                 R"({"AdditionalExtensions":"cefdseq=mm-1;cefdts=1000001001000"})" "\n"
                                 R"({"AdditionalExtensions":"cefdseq=mm-2;cefdts=1000001002000"})" "\n");
    cefd::test::write_file(rows + ".accept", "2 1000000000000000\n1 1000001004000000\n");
    std::string out;
    EXPECT_EQ(run_loadgen(dir, {"--verify-only", "--verify", rows, "--run-id", "mm", "--count", "3", "--wait-s", "0"},
                          &out),
              0)
        << out;
    EXPECT_EQ(json_number(out, "delivered"), 3u) << out;
    EXPECT_EQ(json_number(out, "latency_mismatched"), 2u) << out;
    EXPECT_EQ(json_number(out, "latency_samples"), 1u) << out;  // mm-2: accepted 2 ms after it was sent
    EXPECT_DOUBLE_EQ(json_double(out, "latency_max_ms"), 2.0) << out;
}

TEST(LoadgenUsage, BadNewFlagsExit2) {
    TempDir dir;
    EXPECT_EQ(run_loadgen(dir, {"--payload", "huge"}), 2);
    EXPECT_EQ(run_loadgen(dir, {"--ramp", "100:10"}), 2);
    EXPECT_EQ(run_loadgen(dir, {"--ramp", "100:10:0"}), 2);
    EXPECT_EQ(run_loadgen(dir, {"--senders", "4", "--flows", "2"}), 2);
    EXPECT_EQ(run_loadgen(dir, {"--timestamps", "--no-stamp"}), 2);
    EXPECT_EQ(run_loadgen(dir, {"--seed", "x"}), 2);
}

// `size` promised exit 1 when cefd or its /metrics are unreachable, but only checked at start:
// a collector that died during the search gave exit 0 and a report whose only reason was "loss"
// ("No rate held"), with nothing saying cefd had gone. Found in review.
TEST(Size, ATargetThatDiesDuringTheSearchIsNoVerdictAndExitsOne) {
    TempDir dir;
    const std::string ports = dir.file("ports");
    Process fake({"/usr/bin/env", "python3", cefd::test::source_path("tests/unit/loadgen/dying_target.py"), ports},
                 dir.path(), "fake");
    ASSERT_TRUE(cefd::test::wait_until(10s, [&] { return std::ifstream(ports).good(); }));
    int udp_port = 0;
    int metrics_port = 0;
    std::ifstream(ports) >> udp_port >> metrics_port;
    std::ofstream(dir.file("rows.jsonl")).flush();
    const std::string out = dir.file("report");
    Process size({loadgen_path(), "size",
                  "--target",     "127.0.0.1:" + std::to_string(udp_port),
                  "--metrics",    "http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics",
                  "--verify",     dir.file("rows.jsonl"),
                  "--out",        out,
                  "--hold-s",     "1",
                  "--start-rate", "100",
                  "--max-rate",   "200",
                  "--drain-s",    "1",
                  "--max-p99-ms", "1000"},
                 dir.path(), "size");
    const int code = size.wait(60s);
    const std::string report = cefd::test::read_file(out + "/report.json");
    EXPECT_NE(code, 0) << "exit " << code << "\n" << size.out() << size.err() << report;
    EXPECT_NE(report.find("\"target_unreachable\":true"), std::string::npos) << report;
    EXPECT_NE(report.find("\"reached\":false"), std::string::npos) << report;
}

}  // namespace
