#include "tools/loadgen/sender.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <utility>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>

namespace cefd::loadgen {
namespace {

constexpr std::size_t burst_max = 64;           // events per sendmmsg / per TCP send
constexpr std::size_t stamp_bytes_max = 8 + 64 + 1 + 20 + 1;  // " cefdseq=" run-id "-" n
constexpr std::size_t udp_payload_max = 65'507;

std::int64_t now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

class Socket {
public:
    Socket() = default;
    explicit Socket(int fd) : fd_(fd) {}
    ~Socket() {
        if (fd_ >= 0) ::close(fd_);
    }
    Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Socket& operator=(Socket&& other) noexcept {
        if (this != &other) {
            if (fd_ >= 0) ::close(fd_);
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    Socket(const Socket&) = delete;
    [[nodiscard]] int fd() const noexcept { return fd_; }

private:
    int fd_ = -1;
};

/// A connected socket to the target, or -1 with `error` filled.
Socket connect_target(const LoadgenOptions& options, std::string& error) {
    addrinfo hints{};
    hints.ai_socktype = options.proto == LoadgenOptions::Proto::udp ? SOCK_DGRAM : SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(options.port);
    if (const int rc = ::getaddrinfo(options.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
        error = "cannot resolve " + options.host + ": " + ::gai_strerror(rc);
        return Socket{};
    }
    Socket socket_fd;
    for (const addrinfo* info = found; info != nullptr; info = info->ai_next) {
        Socket candidate(::socket(info->ai_family, info->ai_socktype | SOCK_CLOEXEC, info->ai_protocol));
        if (candidate.fd() < 0) continue;
        // A bigger send buffer lets bursts queue instead of blocking (capped by wmem_max).
        const int buffer_bytes = 4 << 20;
        ::setsockopt(candidate.fd(), SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof buffer_bytes);
        if (::connect(candidate.fd(), info->ai_addr, info->ai_addrlen) == 0) {
            socket_fd = std::move(candidate);
            break;
        }
        error = "cannot connect to " + options.host + ":" + port + ": " + std::strerror(errno);
    }
    ::freeaddrinfo(found);
    if (socket_fd.fd() >= 0) error.clear();
    return socket_fd;
}

struct Shared {
    const LoadgenOptions& options;
    const std::vector<std::string>& lines;
    std::atomic<std::uint64_t>& progress;
    std::atomic<std::uint64_t> next_sequence{0};
    std::uint64_t limit = 0;
    std::int64_t deadline_ns = 0;
    std::atomic<std::uint64_t> sent{0};
    std::atomic<std::uint64_t> send_errors{0};
    std::atomic<std::uint64_t> attempted{0};
    std::mutex error_mutex;
    std::string error;
};

class SenderThread {
public:
    SenderThread(Shared& shared, Socket socket)
        : shared_(shared), options_(shared.options), socket_(std::move(socket)) {
        std::size_t longest = 0;
        for (const std::string& line : shared_.lines) longest = std::max(longest, line.size());
        slot_bytes_ = longest + stamp_bytes_max + 24;  // + octet-count prefix and newline
        buffer_.resize(slot_bytes_ * burst_max);
        stamp_prefix_ = " cefdseq=" + options_.run_id + "-";
    }

    void run() {
        const double rate = options_.rate_eps / static_cast<double>(options_.senders);
        // Bucket depth: 10 ms of events (at least one). Sleeps on a VM often overshoot by
        // hundreds of microseconds; a bucket of one burst lost those tokens and ran 9% slow at
        // 100k/s. Sends stay capped at one burst per syscall; the loop drains the bucket.
        const double depth = rate > 0 ? std::max(rate * 0.01, 1.0) : 0;
        double tokens = depth;
        std::int64_t last_ns = now_ns();
        while (true) {
            std::int64_t now = now_ns();
            if (shared_.deadline_ns != 0 && now >= shared_.deadline_ns) break;
            std::size_t want = burst_max;
            if (rate > 0) {
                tokens = std::min(depth, tokens + static_cast<double>(now - last_ns) * rate / 1e9);
                last_ns = now;
                if (tokens < 1.0) {
                    // Sleep until the next token is due; the bucket makes up for oversleeping.
                    const auto wait_ns = static_cast<std::int64_t>((1.0 - tokens) * 1e9 / rate);
                    std::this_thread::sleep_for(std::chrono::nanoseconds(std::clamp<std::int64_t>(wait_ns, 20'000, 10'000'000)));
                    continue;
                }
                want = std::min<std::size_t>(burst_max, static_cast<std::size_t>(tokens));
            }
            const std::uint64_t first = shared_.next_sequence.fetch_add(want, std::memory_order_relaxed);
            if (first >= shared_.limit) break;
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(want, shared_.limit - first));
            shared_.attempted.fetch_add(n, std::memory_order_relaxed);
            const bool ok = options_.proto == LoadgenOptions::Proto::udp ? send_udp(first, n) : send_tcp(first, n);
            if (rate > 0) tokens -= static_cast<double>(n);
            shared_.progress.fetch_add(n, std::memory_order_relaxed);
            if (!ok) break;
        }
    }

private:
    /// Writes event `sequence` at `out`; returns its length.
    std::size_t format_event(std::uint64_t sequence, char* out) const {
        const std::string& line = shared_.lines[sequence % shared_.lines.size()];
        std::memcpy(out, line.data(), line.size());
        std::size_t length = line.size();
        if (options_.stamp) {
            std::memcpy(out + length, stamp_prefix_.data(), stamp_prefix_.size());
            length += stamp_prefix_.size();
            length = static_cast<std::size_t>(std::to_chars(out + length, out + slot_bytes_, sequence).ptr - out);
        }
        return length;
    }

    bool send_udp(std::uint64_t first, std::size_t n) {
        std::array<mmsghdr, burst_max> messages{};
        std::array<iovec, burst_max> vectors{};
        for (std::size_t i = 0; i < n; ++i) {
            char* slot = buffer_.data() + i * slot_bytes_;
            vectors[i] = {slot, std::min(format_event(first + i, slot), udp_payload_max)};
            messages[i].msg_hdr.msg_iov = &vectors[i];
            messages[i].msg_hdr.msg_iovlen = 1;
        }
        std::size_t done = 0;
        std::uint64_t sent = 0;
        // Bounded: every pass either sends something, skips one event, or spends one retry.
        for (int retries = 0; done < n && retries < 10'000;) {
            const int rc = ::sendmmsg(socket_.fd(), messages.data() + done, static_cast<unsigned>(n - done), 0);
            if (rc > 0) {
                done += static_cast<std::size_t>(rc);
                sent += static_cast<std::uint64_t>(rc);
                continue;
            }
            if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN) {  // full queue: try again
                ++retries;
                if (errno != EINTR) std::this_thread::sleep_for(std::chrono::microseconds(50));
                continue;
            }
            // ECONNREFUSED: an ICMP port-unreachable from an earlier datagram (nobody listening).
            // That error belongs to no event in particular; retry this one a few times.
            if (errno == ECONNREFUSED && ++retries % 4 != 0) continue;
            shared_.send_errors.fetch_add(1, std::memory_order_relaxed);
            ++done;  // this event is lost; the counter says so
        }
        shared_.send_errors.fetch_add(n - done, std::memory_order_relaxed);
        shared_.sent.fetch_add(sent, std::memory_order_relaxed);
        return true;
    }

    bool send_tcp(std::uint64_t first, std::size_t n) {
        char* out = buffer_.data();
        std::size_t length = 0;
        char event[65'536 + stamp_bytes_max];
        for (std::size_t i = 0; i < n; ++i) {
            if (options_.framing == LoadgenOptions::Framing::octet) {
                const std::size_t event_length = format_event(first + i, event);
                length = static_cast<std::size_t>(std::to_chars(out + length, out + buffer_.size(), event_length).ptr - out);
                out[length++] = ' ';
                std::memcpy(out + length, event, event_length);
                length += event_length;
            } else {
                length += format_event(first + i, out + length);
                out[length++] = '\n';
            }
        }
        std::size_t written = 0;
        while (written < length) {
            const ssize_t rc = ::send(socket_.fd(), out + written, length - written, MSG_NOSIGNAL);
            if (rc > 0) {
                written += static_cast<std::size_t>(rc);
            } else if (rc < 0 && errno == EINTR) {
                continue;
            } else {
                // The connection is gone: everything in this burst counts as not sent (a
                // partial frame may have reached the peer; it is not a whole event).
                std::lock_guard lock(shared_.error_mutex);
                shared_.error = std::string("TCP send failed: ") + std::strerror(errno);
                shared_.send_errors.fetch_add(n, std::memory_order_relaxed);
                return false;
            }
        }
        shared_.sent.fetch_add(n, std::memory_order_relaxed);
        return true;
    }

    Shared& shared_;
    const LoadgenOptions& options_;
    Socket socket_;
    std::size_t slot_bytes_ = 0;
    std::vector<char> buffer_;
    std::string stamp_prefix_;
};

}  // namespace

SendReport send_events(const LoadgenOptions& options, const std::vector<std::string>& lines,
                       std::atomic<std::uint64_t>& progress) {
    SendReport report;
    Shared shared{.options = options, .lines = lines, .progress = progress};
    shared.limit = options.count != 0 ? options.count
                   : options.duration_s > 0 ? std::numeric_limits<std::uint64_t>::max()
                                            : lines.size();
    std::vector<Socket> sockets;
    for (std::uint32_t i = 0; i < options.senders; ++i) {
        Socket socket_fd = connect_target(options, report.error);
        if (socket_fd.fd() < 0) return report;
        sockets.push_back(std::move(socket_fd));
    }
    const std::int64_t start = now_ns();
    if (options.duration_s > 0) shared.deadline_ns = start + static_cast<std::int64_t>(options.duration_s * 1e9);
    {
        std::vector<std::jthread> threads;
        for (Socket& socket_fd : sockets) {
            threads.emplace_back([&shared, socket = std::move(socket_fd)]() mutable {
                SenderThread(shared, std::move(socket)).run();
            });
        }
    }  // jthreads join here
    report.elapsed_s = static_cast<double>(now_ns() - start) / 1e9;
    report.attempted = shared.attempted.load();
    report.sent = shared.sent.load();
    report.send_errors = shared.send_errors.load();
    if (report.error.empty()) report.error = shared.error;
    return report;
}

}  // namespace cefd::loadgen
