#include "tools/loadgen/sender.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <utility>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>

namespace cefd::loadgen {
namespace {

constexpr std::size_t burst_max = 64;           // events per sendmmsg / per TCP send
constexpr double pace_batch_s = 250e-6;         // paced runs send a burst per this much time
// " cefdseq=" run-id "-" n, then " cefdts=" and the send time in µs.
constexpr std::size_t stamp_bytes_max = 9 + 64 + 1 + 20 + 8 + 20;
constexpr std::size_t udp_payload_max = 65'507;

std::int64_t now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t unix_us() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

double cpu_seconds(int who = RUSAGE_SELF) noexcept {
    rusage usage{};
    ::getrusage(who, &usage);
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

/// This thread's time spent runnable but waiting for a CPU (the second field of
/// /proc/thread-self/schedstat), in ns; 0 where the kernel does not keep it.
std::int64_t run_delay_ns() noexcept {
    std::FILE* file = std::fopen("/proc/thread-self/schedstat", "r");
    if (file == nullptr) return 0;
    unsigned long long on_cpu = 0;
    unsigned long long waiting = 0;
    const int fields = std::fscanf(file, "%llu %llu", &on_cpu, &waiting);
    std::fclose(file);
    return fields == 2 ? static_cast<std::int64_t>(waiting) : 0;
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

struct SslDeleter {
    void operator()(SSL* ssl) const noexcept { SSL_free(ssl); }
    void operator()(SSL_CTX* context) const noexcept { SSL_CTX_free(context); }
};

/// One flow: a connected socket and, for --proto tls, its TLS session on top.
struct Connection {
    Connection() = default;
    Connection(Socket s, std::unique_ptr<SSL, SslDeleter> session) : socket(std::move(s)), ssl(std::move(session)) {}
    Connection(Connection&&) noexcept = default;
    Connection& operator=(Connection&&) noexcept = default;
    ~Connection() {
        // close_notify, so the server sees a clean end rather than a truncation.
        if (ssl) SSL_shutdown(ssl.get());
    }
    Socket socket;
    std::unique_ptr<SSL, SslDeleter> ssl;
};

std::string openssl_error() {
    char text[256] = "unknown error";
    if (const unsigned long code = ERR_get_error(); code != 0) ERR_error_string_n(code, text, sizeof text);
    return text;
}

/// --proto tls: one client context for every connection (verifying with --cacert, if given).
std::unique_ptr<SSL_CTX, SslDeleter> make_tls_context(const LoadgenOptions& options, std::string& error) {
    std::unique_ptr<SSL_CTX, SslDeleter> context(SSL_CTX_new(TLS_client_method()));
    if (!context) {
        error = "TLS: " + openssl_error();
        return context;
    }
    SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
    if (!options.ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(context.get(), options.ca_file.c_str(), nullptr) != 1) {
            error = "TLS: cannot load --cacert " + options.ca_file + ": " + openssl_error();
            context.reset();
            return context;
        }
        SSL_CTX_set_verify(context.get(), SSL_VERIFY_PEER, nullptr);
    } else {
        SSL_CTX_set_verify(context.get(), SSL_VERIFY_NONE, nullptr);  // a test target: say so in README
    }
    return context;
}

}  // namespace

bool wait_to_retry_udp_send(int error) {
    if (error == EINTR) return true;
    if (error != ENOBUFS && error != EAGAIN) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
    return true;
}

void prepare_send_socket(int fd, int family, bool udp) {
    const int buffer_bytes = 4 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof buffer_bytes);
    if (!udp) return;
    // Without RECVERR the kernel drops a datagram its own device queue has no room for and still
    // reports it sent (udp_send_skb turns the qdisc's ENOBUFS into success).
    const int on = 1;
    if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &on, sizeof on);
    else ::setsockopt(fd, IPPROTO_IP, IP_RECVERR, &on, sizeof on);
}

namespace {

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
        prepare_send_socket(candidate.fd(), info->ai_family, info->ai_socktype == SOCK_DGRAM);
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

/// connect_target, plus the TLS handshake for --proto tls.
Connection connect_flow(const LoadgenOptions& options, SSL_CTX* context, std::string& error) {
    Connection connection(connect_target(options, error), nullptr);
    if (connection.socket.fd() < 0 || context == nullptr) return connection;
    connection.ssl.reset(SSL_new(context));
    if (!connection.ssl || SSL_set_fd(connection.ssl.get(), connection.socket.fd()) != 1) {
        error = "TLS: " + openssl_error();
        return Connection{};
    }
    if (!options.ca_file.empty()) {
        // An IP target is checked against the certificate's IP entries, a name against its names.
        X509_VERIFY_PARAM* verify = SSL_get0_param(connection.ssl.get());
        if (X509_VERIFY_PARAM_set1_ip_asc(verify, options.host.c_str()) != 1) {
            SSL_set1_host(connection.ssl.get(), options.host.c_str());
            SSL_set_tlsext_host_name(connection.ssl.get(), options.host.c_str());
        }
    }
    if (SSL_connect(connection.ssl.get()) != 1) {
        error = "TLS handshake with " + options.host + " failed: " + openssl_error();
        return Connection{};
    }
    return connection;
}

struct Shared {
    const LoadgenOptions& options;
    const std::vector<std::string>& lines;
    std::atomic<std::uint64_t>& progress;
    std::atomic<std::uint64_t> next_sequence{0};
    std::uint64_t limit = 0;
    std::int64_t start_ns = 0;
    std::int64_t deadline_ns = 0;
    std::atomic<std::uint64_t> sent{0};
    std::atomic<std::uint64_t> send_errors{0};
    std::atomic<std::uint64_t> attempted{0};
    std::atomic<std::int64_t> sender_cpu_ns{0};
    std::atomic<std::int64_t> sender_run_delay_ns{0};
    std::atomic<std::int64_t> send_wait_ns{0};
    std::mutex error_mutex;
    std::string error;
};

class SenderThread {
public:
    SenderThread(Shared& shared, std::vector<Connection> flows)
        : shared_(shared), options_(shared.options), flows_(std::move(flows)) {
        std::size_t longest = 0;
        for (const std::string& line : shared_.lines) longest = std::max(longest, line.size());
        slot_bytes_ = longest + stamp_bytes_max + 24;  // + octet-count prefix and newline
        buffer_.resize(slot_bytes_ * burst_max);
        stamp_prefix_ = " cefdseq=" + options_.run_id + "-";
    }

    /// The offered rate for this sender at `elapsed_ns` into the run (0 = flat out).
    [[nodiscard]] double rate_at(std::int64_t elapsed_ns) const noexcept {
        double total = options_.rate_eps;
        if (options_.ramp_hold_s > 0) {
            const double steps = std::floor(static_cast<double>(elapsed_ns) / 1e9 / options_.ramp_hold_s);
            total = options_.ramp_start_eps + options_.ramp_step_eps * steps;
            if (total <= 0) total = 1;  // a ramp that steps down never stops the run
        }
        return total / static_cast<double>(options_.senders);
    }

    void run() {
        const double cpu_start = cpu_seconds(RUSAGE_THREAD);
        const std::int64_t delay_start = run_delay_ns();
        loop();
        shared_.sender_cpu_ns.fetch_add(static_cast<std::int64_t>((cpu_seconds(RUSAGE_THREAD) - cpu_start) * 1e9),
                                        std::memory_order_relaxed);
        shared_.sender_run_delay_ns.fetch_add(run_delay_ns() - delay_start, std::memory_order_relaxed);
        shared_.send_wait_ns.fetch_add(send_wait_ns_, std::memory_order_relaxed);
    }

    /// The requested events over [0, elapsed_ns] for the whole run (all senders): the integral
    /// of the rate; 0 when flat out.
    [[nodiscard]] static double requested_events(const LoadgenOptions& options, std::int64_t elapsed_ns) {
        const double seconds = static_cast<double>(elapsed_ns) / 1e9;
        if (options.ramp_hold_s <= 0) return options.rate_eps * seconds;
        double total = 0;
        for (double t = 0; t < seconds; t += options.ramp_hold_s) {
            const double steps = std::floor(t / options.ramp_hold_s + 1e-9);
            const double step_rate = std::max(1.0, options.ramp_start_eps + options.ramp_step_eps * steps);
            total += step_rate * std::min(options.ramp_hold_s, seconds - t);
        }
        return total;
    }

private:
    void loop() {
        double rate = rate_at(0);
        // Bucket depth: 10 ms of events (at least one). Sleeps on a VM often overshoot by
        // hundreds of microseconds; a bucket of one burst lost those tokens and ran 9% slow at
        // 100k/s. Sends stay capped at one burst per syscall; the loop drains the bucket.
        double tokens = rate > 0 ? std::max(rate * 0.01, 1.0) : 0;
        std::int64_t last_ns = now_ns();
        while (true) {
            std::int64_t now = now_ns();
            if (shared_.deadline_ns != 0 && now >= shared_.deadline_ns) break;
            if (options_.ramp_hold_s > 0) rate = rate_at(now - shared_.start_ns);
            const double depth = rate > 0 ? std::max(rate * 0.01, 1.0) : 0;
            std::size_t want = burst_max;
            if (rate > 0) {
                tokens = std::min(depth, tokens + static_cast<double>(now - last_ns) * rate / 1e9);
                last_ns = now;
                // Pace by batches: wait until a burst's worth (250 µs of events, 1 to 64) is due,
                // so a high rate costs one wake-up per burst, not one per few events.
                const double batch = std::clamp(rate * pace_batch_s, 1.0, static_cast<double>(burst_max));
                if (tokens < batch) {
                    // Sleep until the batch is due; the bucket makes up for oversleeping.
                    const auto wait_ns = static_cast<std::int64_t>((batch - tokens) * 1e9 / rate);
                    std::this_thread::sleep_for(std::chrono::nanoseconds(std::clamp<std::int64_t>(wait_ns, 20'000, 10'000'000)));
                    continue;
                }
                want = std::min<std::size_t>(burst_max, static_cast<std::size_t>(tokens));
            }
            const std::uint64_t first = shared_.next_sequence.fetch_add(want, std::memory_order_relaxed);
            if (first >= shared_.limit) break;
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(want, shared_.limit - first));
            shared_.attempted.fetch_add(n, std::memory_order_relaxed);
            if (options_.stamp_time) send_time_us_ = unix_us();  // one clock read per burst
            Connection& flow = flows_[next_flow_++ % flows_.size()];
            const bool ok = options_.proto == LoadgenOptions::Proto::udp ? send_udp(flow, first, n) : send_tcp(flow, first, n);
            if (rate > 0) tokens -= static_cast<double>(n);
            shared_.progress.fetch_add(n, std::memory_order_relaxed);
            if (!ok) break;
        }
    }

    /// Writes event `sequence` at `out`; returns its length.
    std::size_t format_event(std::uint64_t sequence, char* out) const {
        const std::string& line = shared_.lines[sequence % shared_.lines.size()];
        std::memcpy(out, line.data(), line.size());
        std::size_t length = line.size();
        if (options_.stamp) {
            std::memcpy(out + length, stamp_prefix_.data(), stamp_prefix_.size());
            length += stamp_prefix_.size();
            length = static_cast<std::size_t>(std::to_chars(out + length, out + slot_bytes_, sequence).ptr - out);
            if (options_.stamp_time) {
                std::memcpy(out + length, " cefdts=", 8);
                length += 8;
                length = static_cast<std::size_t>(std::to_chars(out + length, out + slot_bytes_, send_time_us_).ptr - out);
            }
        }
        return length;
    }

    bool send_udp(Connection& flow, std::uint64_t first, std::size_t n) {
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
            const int rc = ::sendmmsg(flow.socket.fd(), messages.data() + done, static_cast<unsigned>(n - done), 0);
            if (rc > 0) {
                done += static_cast<std::size_t>(rc);
                sent += static_cast<std::uint64_t>(rc);
                continue;
            }
            if (wait_to_retry_udp_send(errno)) {  // a full queue
                ++retries;
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

    bool send_tcp(Connection& flow, std::uint64_t first, std::size_t n) {
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
        const std::int64_t wait_start = now_ns();  // blocked sends are the target's backpressure
        const auto count_wait = [&] { send_wait_ns_ += now_ns() - wait_start; };
        while (written < length) {
            if (flow.ssl) {
                std::size_t wrote = 0;
                if (SSL_write_ex(flow.ssl.get(), out + written, length - written, &wrote) == 1) {
                    written += wrote;
                    continue;
                }
                std::lock_guard lock(shared_.error_mutex);
                shared_.error = "TLS send failed: " + openssl_error();
                shared_.send_errors.fetch_add(n, std::memory_order_relaxed);
                count_wait();
                return false;
            }
            const ssize_t rc = ::send(flow.socket.fd(), out + written, length - written, MSG_NOSIGNAL);
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
                count_wait();
                return false;
            }
        }
        count_wait();
        shared_.sent.fetch_add(n, std::memory_order_relaxed);
        return true;
    }

    Shared& shared_;
    const LoadgenOptions& options_;
    std::vector<Connection> flows_;
    std::size_t next_flow_ = 0;
    std::int64_t send_time_us_ = 0;
    std::int64_t send_wait_ns_ = 0;
    std::size_t slot_bytes_ = 0;
    std::vector<char> buffer_;
    std::string stamp_prefix_;
};

}  // namespace

GeneratorCheck check_generator(const SendReport& report) {
    GeneratorCheck check;
    if (report.elapsed_s <= 0 || report.sender_threads == 0) return check;
    const double thread_seconds = report.elapsed_s * static_cast<double>(report.sender_threads);
    check.offered_eps = static_cast<double>(report.sent) / report.elapsed_s;
    check.requested_eps = report.requested_events / report.elapsed_s;
    check.sender_cpu_share = report.sender_cpu_s / thread_seconds;
    check.sender_runnable_share = (report.sender_cpu_s + report.sender_run_delay_s) / thread_seconds;
    // Time inside send() is the target pushing back only while the thread sleeps there. A sender
    // on a CPU (or waiting for one) nearly all the time is encrypting (SSL_write) or copying
    // through the loopback stack inside send(): that is the generator's limit, not cefd's.
    const bool busy =
        check.sender_cpu_share >= sender_cpu_share_max || check.sender_runnable_share >= sender_cpu_share_max;
    char why[200];
    if (check.requested_eps > 0 && check.offered_eps < offered_fraction_min * check.requested_eps) {
        if (report.send_wait_s >= 0.5 * thread_seconds && !busy) {
            check.target_backpressure = true;  // the target did not take it: not the generator
        } else {
            check.limited = true;
            std::snprintf(why, sizeof why, "offered %.0f/s of %.0f/s requested (%.1f%%, below %.0f%%)",
                          check.offered_eps, check.requested_eps, 100 * check.offered_eps / check.requested_eps,
                          100 * offered_fraction_min);
            check.why = why;
        }
    }
    if (check.sender_cpu_share >= sender_cpu_share_max) {
        check.limited = true;
        std::snprintf(why, sizeof why, "%ssender threads CPU-bound (%.0f%% of %u core(s))",
                      check.why.empty() ? "" : "; ", 100 * check.sender_cpu_share, report.sender_threads);
        check.why += why;
    } else if (check.sender_runnable_share >= sender_cpu_share_max) {
        // Always wanting a CPU but often not getting one: the machine, not the target, set the pace.
        check.limited = true;
        std::snprintf(why, sizeof why, "%ssender threads starved of CPU (runnable %.0f%% of the time, on a CPU %.0f%%)",
                      check.why.empty() ? "" : "; ", 100 * check.sender_runnable_share, 100 * check.sender_cpu_share);
        check.why += why;
    }
    return check;
}

SendReport send_events(const LoadgenOptions& options, const std::vector<std::string>& lines,
                       std::atomic<std::uint64_t>& progress) {
    SendReport report;
    Shared shared{.options = options, .lines = lines, .progress = progress};
    shared.limit = options.count != 0 ? options.count
                   : options.duration_s > 0 ? std::numeric_limits<std::uint64_t>::max()
                                            : lines.size();
    std::unique_ptr<SSL_CTX, SslDeleter> context;
    if (options.proto == LoadgenOptions::Proto::tls) {
        context = make_tls_context(options, report.error);
        if (!context) return report;
    }
    // Flow i belongs to sender i % senders, so every sender has at least one.
    std::vector<std::vector<Connection>> flows(options.senders);
    for (std::uint32_t i = 0; i < options.flows; ++i) {
        Connection flow = connect_flow(options, context.get(), report.error);
        if (flow.socket.fd() < 0) return report;
        flows[i % options.senders].push_back(std::move(flow));
    }
    const double cpu_before = cpu_seconds();
    const std::int64_t start = now_ns();
    shared.start_ns = start;
    if (options.duration_s > 0) shared.deadline_ns = start + static_cast<std::int64_t>(options.duration_s * 1e9);
    {
        std::vector<std::jthread> threads;
        for (std::vector<Connection>& sender_flows : flows) {
            threads.emplace_back([&shared, mine = std::move(sender_flows)]() mutable {
                SenderThread(shared, std::move(mine)).run();
            });
        }
    }  // jthreads join here
    const std::int64_t elapsed_ns = now_ns() - start;
    report.elapsed_s = static_cast<double>(elapsed_ns) / 1e9;
    report.cpu_s = cpu_seconds() - cpu_before;
    report.sender_cpu_s = static_cast<double>(shared.sender_cpu_ns.load()) / 1e9;
    report.sender_run_delay_s = static_cast<double>(shared.sender_run_delay_ns.load()) / 1e9;
    report.send_wait_s = static_cast<double>(shared.send_wait_ns.load()) / 1e9;
    report.sender_threads = options.senders;
    report.requested_events = SenderThread::requested_events(options, elapsed_ns);
    if (options.count != 0) {
        // A count that ran out before the clock did asks for no more than the count.
        report.requested_events = std::min(report.requested_events, static_cast<double>(options.count));
    }
    report.attempted = shared.attempted.load();
    report.sent = shared.sent.load();
    report.send_errors = shared.send_errors.load();
    if (report.error.empty()) report.error = shared.error;
    return report;
}

}  // namespace cefd::loadgen
