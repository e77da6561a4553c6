// TCP connections cefd pauses because its lane ring is full (the spool is full and blocks, the
// stand-in is stopped): such a connection is held back by cefd, not idle, and its frames wait in
// the socket buffer, already acknowledged to the sender.
//   - A newcomer over the lane's share evicted it as "the longest idle": its frames were lost
//     and the sender got a reset, counted only as receive_tcp_evicted_total.
//   - Reset by its peer while paused, it woke every epoll_wait (epoll reports a hang-up whatever
//     the interest) and the receive thread spun at 100 % CPU.
// Both found in review.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include <gtest/gtest.h>

#include "tests/e2e/harness.h"
#include "tests/unit/receive/test_pki.h"

namespace cefd::test {
namespace {

using namespace std::chrono_literals;

int connect_to(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in address = loopback(port);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

/// cefd's utime + stime in seconds (/proc/PID/stat).
double cpu_seconds(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const std::size_t close_paren = text.rfind(')');
    std::istringstream fields(text.substr(close_paren + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; fields >> field; ++i) {
        if (i == 14 || i == 15) ticks += std::stod(field);
        if (i == 15) break;
    }
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

/// The harness's stalling pipeline with at most 3 connections and no idle timeout in the test.
CefdOptions paused_options(const char* engine) {
    CefdOptions options = stalling_options(engine);
    options.receive_extra += "max_tcp_connections = 3\ntcp_idle_timeout_ms = 600000\n";
    return options;
}

std::string frame(int i) {
    char line[256];
    std::snprintf(line, sizeof line,
                  "<134>Mar 14 09:15:02 host CEF:0|Vendor|Product|1|2|Name|3|msg=a%d cs1=%0160d\n", i, i);
    return line;
}

/// Sends frames 0..count-1 on `fd` (blocking); false if the connection failed first.
bool send_frames(int fd, int count) {
    std::string chunk;
    for (int i = 0; i < count; ++i) {
        chunk += frame(i);
        if (chunk.size() < 16'384 && i + 1 < count) continue;
        for (std::size_t sent = 0; sent < chunk.size();) {
            const ssize_t n = ::send(fd, chunk.data() + sent, chunk.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) return false;
            sent += static_cast<std::size_t>(n);
        }
        chunk.clear();
    }
    return true;
}

/// Waits until the 1 MiB ring is nearly full: the worker is blocked on the spool, and cefd pauses
/// a connection whose next frames do not fit.
bool wait_for_stall(const Cefd& cefd) {
    return wait_until(60s, [&] { return cefd.metric("cefd_ring_used_bytes") >= 900'000; });
}

/// The sending thread and the stopped stand-in, put right on every way out of a test (an ASSERT
/// returns early): the stand-in continues, the socket is shut so a blocked send returns, and the
/// thread is joined.
struct Cleanup {
    pid_t standin;
    int& fd;
    std::thread& sender;
    ~Cleanup() {
        ::kill(standin, SIGCONT);
        if (sender.joinable()) {
            if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
            sender.join();
        }
        if (fd >= 0) ::close(fd);
    }
};

/// Resets `fd` (SO_LINGER 0: an RST, not a FIN; shutdown() first wakes `sender`, blocked in a
/// send), then returns the CPU seconds cefd uses in the next 2 s, with nothing to do.
double cpu_after_a_reset(int& fd, std::thread& sender, pid_t cefd_pid) {
    const linger reset{.l_onoff = 1, .l_linger = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    ::shutdown(fd, SHUT_RDWR);
    sender.join();
    ::close(std::exchange(fd, -1));
    std::this_thread::sleep_for(200ms);
    const double before = cpu_seconds(cefd_pid);
    std::this_thread::sleep_for(2s);
    return cpu_seconds(cefd_pid) - before;
}

/// With the stand-in stopped: connects to cefd, starts `sender` sending 40,000 frames (~9 MB,
/// more than the ring, the spool and both socket buffers) on `fd`, and returns once the ring is
/// full (false if it never filled).
bool start_stalled_sender(const Cefd& cefd, int& fd, std::thread& sender) {
    fd = connect_to(cefd.port());
    if (fd < 0) return false;
    const int socket = fd;
    sender = std::thread([socket] { send_frames(socket, 40'000); });
    return wait_for_stall(cefd);
}

class PausedConnections : public ::testing::TestWithParam<const char*> {};

TEST_P(PausedConnections, AreNotEvictedForANewcomerAndLoseNothing) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure, paused_options(GetParam()));
    ASSERT_EQ(::kill(azure.process().pid(), SIGSTOP), 0);

    constexpr int count = 40'000;  // ~9 MB: more than the ring, the spool and both socket buffers
    int a = connect_to(cefd.port());
    ASSERT_GE(a, 0);
    std::atomic<bool> a_ok{false};
    std::thread sender([&] { a_ok = send_frames(a, count); });
    const Cleanup cleanup{azure.process().pid(), a, sender};
    ASSERT_TRUE(wait_for_stall(cefd)) << "the ring never filled";
    std::this_thread::sleep_for(1500ms);  // longer than the 1 s a connection must be idle to be evicted

    // Two newcomers fill the lane's share of 3; a third finds only the paused one to evict.
    const int b = connect_to(cefd.port());
    const int c = connect_to(cefd.port());
    const int d = connect_to(cefd.port());
    ASSERT_GE(b, 0);
    ASSERT_GE(c, 0);
    EXPECT_TRUE(wait_until(10s, [&] {
        return cefd.metric("cefd_receive_tcp_rejected_total") + cefd.metric("cefd_receive_tcp_evicted_total") >= 1;
    }));
    EXPECT_EQ(cefd.metric("cefd_receive_tcp_evicted_total"), 0) << "the paused connection was evicted";
    EXPECT_EQ(cefd.metric("cefd_receive_tcp_rejected_total"), 1) << "the newcomer was not refused";

    ASSERT_EQ(::kill(azure.process().pid(), SIGCONT), 0);
    sender.join();
    EXPECT_TRUE(a_ok) << "the paused connection was closed under its sender";
    for (const int fd : {b, c, d}) ::close(fd);
    ::close(std::exchange(a, -1));
    // Every frame the sender wrote arrives (at least once: a request cut by the stop may repeat).
    std::set<std::string> messages;
    ASSERT_TRUE(wait_until(120s, [&] {
        if (azure.row_count() < static_cast<std::size_t>(count)) return false;
        messages = azure.messages();
        return messages.size() >= static_cast<std::size_t>(count);
    })) << "rows " << azure.row_count() << ", distinct " << messages.size();
    EXPECT_EQ(messages.size(), static_cast<std::size_t>(count));
}

TEST_P(PausedConnections, ResetByThePeerDoesNotSpinTheReceiveThread) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure, paused_options(GetParam()));
    ASSERT_EQ(::kill(azure.process().pid(), SIGSTOP), 0);
    int a = -1;
    std::thread sender;
    const Cleanup cleanup{azure.process().pid(), a, sender};
    ASSERT_TRUE(start_stalled_sender(cefd, a, sender)) << "the ring never filled";
    std::this_thread::sleep_for(200ms);
    const double used = cpu_after_a_reset(a, sender, cefd.process().pid());
    // A spinning receive thread takes a whole core (~2 s here); an idle cefd almost nothing.
    EXPECT_LT(used, 0.5) << "cefd used " << used << " CPU-s in 2 s with nothing to do";

    ASSERT_EQ(::kill(azure.process().pid(), SIGCONT), 0);
    EXPECT_EQ(cefd.stop(), 0);
}

/// The number after `key=` in the last line of `log` that has it (the `final:` line), or -1.
long long logged_number(const std::string& log, const std::string& key) {
    const std::size_t at = log.rfind(key + "=");
    return at == std::string::npos ? -1 : std::atoll(log.c_str() + at + key.size() + 1);
}

// What a connection holds when cefd stops (frames the kernel acknowledged, unread because the
// ring was full) was lost: the receive thread closed its connections at once. The stop's drain
// (receive.drain_timeout_ms) now reads them while the worker frees ring room, and delivers.
TEST_P(PausedConnections, FramesHeldAtStopAreDelivered) {
    TempDir dir;
    AzureStandin azure(dir);
    CefdOptions options = paused_options(GetParam());
    options.receive_extra += "drain_timeout_ms = 30000\n";
    Cefd cefd(dir, azure, options);
    ASSERT_EQ(::kill(azure.process().pid(), SIGSTOP), 0);
    int a = connect_to(cefd.port());
    ASSERT_GE(a, 0);
    std::thread no_sender;
    const Cleanup cleanup{azure.process().pid(), a, no_sender};
    // Send until the window has been shut for a second: cefd paused the connection, and the
    // kernel holds what send() took. The sender keeps the connection open, as a sender does
    // when its collector restarts.
    const timeval wait_at_most{.tv_sec = 1, .tv_usec = 0};
    ASSERT_EQ(::setsockopt(a, SOL_SOCKET, SO_SNDTIMEO, &wait_at_most, sizeof wait_at_most), 0);
    std::size_t sent = 0;       // bytes send() took
    std::size_t whole_end = 0;  // where the last frame send() took whole ends
    int whole = 0;              // frames send() took whole
    for (int i = 0; i < 200'000; ++i) {
        const std::string line = frame(i);
        std::size_t done = 0;
        while (done < line.size()) {
            const ssize_t n = ::send(a, line.data() + done, line.size() - done, MSG_NOSIGNAL);
            if (n <= 0) break;
            done += static_cast<std::size_t>(n);
        }
        sent += done;
        if (done < line.size()) break;  // stalled
        whole_end = sent;
        ++whole;
    }
    ASSERT_GT(whole, 1'000) << "the stall came before the ring (1 MiB) could have filled";
    ASSERT_LT(whole, 200'000) << "cefd never stalled";

    ASSERT_EQ(::kill(cefd.process().pid(), SIGTERM), 0);
    std::this_thread::sleep_for(300ms);  // the drain waits for the worker: the stand-in is stopped
    ASSERT_EQ(::kill(azure.process().pid(), SIGCONT), 0);
    EXPECT_EQ(cefd.process().wait(90s), 0) << cefd.process().err();
    const std::string log = cefd.process().err();
    // Only the frame send() took a part of is left (cefd cannot know where it would have ended).
    EXPECT_EQ(logged_number(log, "tcp_unread_at_stop_bytes"), static_cast<long long>(sent - whole_end)) << log;
    EXPECT_NE(log.find("TCP/TLS frames its sockets still held at stop"), std::string::npos) << log;
    const std::set<std::string> messages = azure.messages();
    EXPECT_EQ(messages.size(), static_cast<std::size_t>(whole)) << "rows " << azure.row_count();
}

// When the drain's time runs out (receive.drain_timeout_ms, 1 s by default) with the ring still
// full, what a connection holds is not delivered. It went uncounted: the final line said no
// drops. It is counted, and said.
TEST_P(PausedConnections, BytesLeftUnreadAtStopAreCountedAndSaid) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure, paused_options(GetParam()));
    ASSERT_EQ(::kill(azure.process().pid(), SIGSTOP), 0);
    int a = -1;
    std::thread sender;
    const Cleanup cleanup{azure.process().pid(), a, sender};
    ASSERT_TRUE(start_stalled_sender(cefd, a, sender)) << "the ring never filled";
    std::this_thread::sleep_for(300ms);

    ASSERT_EQ(::kill(cefd.process().pid(), SIGTERM), 0);
    ASSERT_TRUE(wait_until(30s, [&] { return cefd.process().err().find("bytes unread on 1 connection") != std::string::npos; }))
        << cefd.process().err();
    ::kill(azure.process().pid(), SIGCONT);  // the workers and the sender finish their part
    EXPECT_EQ(cefd.process().wait(60s), 0) << cefd.process().err();
    const std::string log = cefd.process().err();
    const std::size_t at = log.find("tcp_unread_at_stop_bytes=");
    ASSERT_NE(at, std::string::npos) << log;
    EXPECT_GT(std::atoll(log.c_str() + at + std::strlen("tcp_unread_at_stop_bytes=")), 0) << log;
}

// The same over TLS: the TLS server's own epoll set (both engines use it).
TEST(PausedTlsConnection, ResetByThePeerDoesNotSpinTheReceiveThread) {
    ::signal(SIGPIPE, SIG_IGN);  // OpenSSL writes with write(2): the reset would kill the test
    TempDir dir;
    write_test_server_identity(dir.file("server.pem"), dir.file("server.key"));
    AzureStandin azure(dir);
    const int tls_port = free_port();
    CefdOptions options = paused_options("recvmmsg");
    options.receive_extra += tls_receive_lines(dir, tls_port);
    Cefd cefd(dir, azure, options);
    ASSERT_EQ(::kill(azure.process().pid(), SIGSTOP), 0);

    SSL_CTX* context = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nullptr);  // a test server; what matters is the reset
    int a = connect_to(tls_port);
    ASSERT_GE(a, 0);
    SSL* ssl = SSL_new(context);
    SSL_set_fd(ssl, a);
    ASSERT_EQ(SSL_connect(ssl), 1);
    std::thread sender([&] {
        std::string chunk;
        for (int i = 0; i < 40'000; ++i) {
            const std::string line = frame(i);
            chunk += std::to_string(line.size()) + " " + line;
            if (chunk.size() < 16'384) continue;
            if (SSL_write(ssl, chunk.data(), static_cast<int>(chunk.size())) <= 0) return;
            chunk.clear();
        }
    });
    {
        const Cleanup cleanup{azure.process().pid(), a, sender};
        ASSERT_TRUE(wait_for_stall(cefd)) << "the ring never filled";
        std::this_thread::sleep_for(200ms);
        const double used = cpu_after_a_reset(a, sender, cefd.process().pid());
        EXPECT_LT(used, 0.5) << "cefd used " << used << " CPU-s in 2 s with nothing to do";
    }
    SSL_free(ssl);
    SSL_CTX_free(context);
    EXPECT_EQ(cefd.stop(), 0);
}

// The stop's drain over TLS: what OpenSSL and the kernel hold for a paused TLS connection is read
// (SSL_read, TlsServer::read_at_stop) and delivered.
class PausedTlsConnections : public ::testing::TestWithParam<const char*> {};

TEST_P(PausedTlsConnections, FramesHeldAtStopAreDelivered) {
    ::signal(SIGPIPE, SIG_IGN);
    TempDir dir;
    write_test_server_identity(dir.file("server.pem"), dir.file("server.key"));
    AzureStandin azure(dir);
    const int tls_port = free_port();
    CefdOptions options = paused_options(GetParam());
    options.receive_extra += "drain_timeout_ms = 30000\n" + tls_receive_lines(dir, tls_port);
    Cefd cefd(dir, azure, options);
    ASSERT_EQ(::kill(azure.process().pid(), SIGSTOP), 0);

    SSL_CTX* context = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nullptr);
    int a = connect_to(tls_port);
    ASSERT_GE(a, 0);
    SSL* ssl = SSL_new(context);
    SSL_set_fd(ssl, a);
    ASSERT_EQ(SSL_connect(ssl), 1);
    std::thread no_sender;
    int whole = 0;  // frames SSL_write took whole (one record each)
    {
        const Cleanup cleanup{azure.process().pid(), a, no_sender};
        const timeval wait_at_most{.tv_sec = 1, .tv_usec = 0};
        ASSERT_EQ(::setsockopt(a, SOL_SOCKET, SO_SNDTIMEO, &wait_at_most, sizeof wait_at_most), 0);
        for (int i = 0; i < 200'000; ++i) {
            const std::string line = frame(i);
            const std::string framed = std::to_string(line.size()) + " " + line;
            if (SSL_write(ssl, framed.data(), static_cast<int>(framed.size())) <= 0) break;  // stalled
            ++whole;
        }
        ASSERT_GT(whole, 1'000);
        ASSERT_LT(whole, 200'000) << "cefd never stalled";
        ASSERT_EQ(::kill(cefd.process().pid(), SIGTERM), 0);
        std::this_thread::sleep_for(300ms);
        ASSERT_EQ(::kill(azure.process().pid(), SIGCONT), 0);
        EXPECT_EQ(cefd.process().wait(90s), 0) << cefd.process().err();
    }
    SSL_free(ssl);
    SSL_CTX_free(context);
    const std::string log = cefd.process().err();
    EXPECT_NE(log.find("TCP/TLS frames its sockets still held at stop"), std::string::npos) << log;
    const std::set<std::string> messages = azure.messages();
    // The record cut by the stall is the only thing left (cefd cannot decrypt half a record).
    EXPECT_EQ(messages.size(), static_cast<std::size_t>(whole)) << "rows " << azure.row_count() << "\n" << log;
}

INSTANTIATE_TEST_SUITE_P(Engines, PausedConnections, ::testing::Values("recvmmsg", "io_uring"),
                         [](const auto& info) { return std::string(info.param) == "io_uring" ? "io_uring" : "recvmmsg"; });
INSTANTIATE_TEST_SUITE_P(Engines, PausedTlsConnections, ::testing::Values("recvmmsg", "io_uring"),
                         [](const auto& info) {
                             return std::string(info.param) == "io_uring" ? "io_uring" : "recvmmsg";
                         });

}  // namespace
}  // namespace cefd::test
