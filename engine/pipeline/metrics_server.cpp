#include "engine/pipeline/metrics_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/clock.h"
#include "engine/log.h"
#include "engine/pipeline/config.h"
#include "engine/runtime/threads.h"
#include "engine/unique_fd.h"

namespace cefd {
namespace {

// A request line plus headers from curl or Prometheus is a few hundred bytes.
constexpr std::size_t request_bytes_max = 8'192;
// After answering, how long the server keeps reading (and discarding) what the client still
// sends, so the client sees the answer rather than a reset (see the header comment).
constexpr std::int64_t linger_ns = 1'000'000'000;
// When the process is out of descriptors, accept() is retried after this long (not in a spin).
constexpr std::int64_t accept_pause_ns = 100'000'000;
// Connections accepted per pass, so a flood cannot starve the connections already open.
constexpr int accepts_per_pass = 1'024;

enum class Reason : std::uint8_t { malformed, too_large, method, not_found, read_timeout, write_timeout, evicted, no_descriptors, count };
constexpr std::array<const char*, static_cast<std::size_t>(Reason::count)> reason_names{
    "malformed", "too_large", "method", "not_found", "read_timeout", "write_timeout", "evicted", "no_descriptors"};

enum class Route : std::uint8_t { metrics, healthz, readyz, count };
constexpr std::array<const char*, static_cast<std::size_t>(Route::count)> route_names{"metrics", "healthz", "readyz"};

struct Stats {
    std::array<Counter, static_cast<std::size_t>(Route::count)> requests{};
    std::array<Counter, static_cast<std::size_t>(Reason::count)> rejected{};
    Counter open{0};  // gauge: connections open now
};

/// What epoll_event.data.ptr points to: the listener, the wake-up eventfd or a connection.
struct Pollable {
    enum class Kind : std::uint8_t { listener, wake, connection };
    Kind kind;
};

struct Connection : Pollable {
    enum class State : std::uint8_t { idle, reading, writing, lingering };
    Connection() : Pollable{Kind::connection}, request(std::make_unique<char[]>(request_bytes_max)) {}
    State state = State::idle;
    UniqueFd fd;
    std::int64_t accepted_ns = 0;
    std::int64_t deadline_ns = 0;
    std::unique_ptr<char[]> request;  // request_bytes_max, allocated once per slot
    std::size_t used = 0;
    std::string response;
    std::size_t sent = 0;
};

/// What the bytes received so far are.
enum class Parse : std::uint8_t { incomplete, complete, malformed, too_large };

bool is_token_char(char c) { return c >= 'A' && c <= 'Z'; }

/// Checks the request line and looks for the end of the headers. Rejects garbage as soon as
/// it cannot be the start of "METHOD SP target SP HTTP/1.x", without waiting for a newline.
Parse parse_request(std::string_view data, std::string_view& method, std::string_view& target) {
    std::size_t i = 0;
    while (i < data.size() && is_token_char(data[i])) ++i;
    if (i > 16) return Parse::malformed;
    if (i == data.size()) return data.size() >= request_bytes_max ? Parse::too_large : Parse::incomplete;
    if (data[i] != ' ' || i == 0) return Parse::malformed;
    const std::size_t line_end = data.find('\n');
    if (line_end == std::string_view::npos) {
        // No control characters inside a request line; a target is printable ASCII.
        for (std::size_t j = i + 1; j < data.size(); ++j)
            if (static_cast<unsigned char>(data[j]) < 0x20 && data[j] != '\r') return Parse::malformed;
        return data.size() >= request_bytes_max ? Parse::too_large : Parse::incomplete;
    }
    std::string_view line = data.substr(0, line_end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    method = line.substr(0, i);
    const std::string_view rest = line.substr(i + 1);
    const std::size_t space = rest.find(' ');
    if (space == std::string_view::npos || space == 0) return Parse::malformed;
    target = rest.substr(0, space);
    const std::string_view version = rest.substr(space + 1);
    if (version != "HTTP/1.1" && version != "HTTP/1.0") return Parse::malformed;
    for (const char c : target)
        if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) return Parse::malformed;
    // The headers end at an empty line; we need none of them.
    if (data.find("\r\n\r\n", line_end - 1) != std::string_view::npos || data.find("\n\n", line_end) != std::string_view::npos)
        return Parse::complete;
    return data.size() >= request_bytes_max ? Parse::too_large : Parse::incomplete;
}

std::string http_response(int status, std::string_view reason, std::string_view content_type, std::string_view body,
                          bool head) {
    std::string out;
    out.reserve(128 + body.size());
    out += "HTTP/1.1 " + std::to_string(status) + " ";
    out += reason;
    out += "\r\nContent-Type: ";
    out += content_type;
    out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    if (!head) out += body;
    return out;
}

}  // namespace

class MetricsServer::Impl {
public:
    Impl(const MetricsConfig& config, MetricsRegistry& registry, const ReadinessChecks& checks)
        : registry_(registry),
          checks_(checks),
          read_timeout_ns_(static_cast<std::int64_t>(config.read_timeout_ms) * 1'000'000),
          slots_(config.max_connections) {}

    ~Impl() { stop(); }

    Status bind(const std::string& listen) {
        const auto colon = listen.rfind(':');
        std::string host = listen.substr(0, colon);
        if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        const std::string port = listen.substr(colon + 1);
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        addrinfo* found = nullptr;
        if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
            return Error{Errc::config, "metrics.listen: cannot resolve " + listen + ": " + ::gai_strerror(rc)};
        }
        std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, &::freeaddrinfo);
        UniqueFd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd.valid()) return Error{Errc::io, errno, "metrics.listen: socket"};
        const int one = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd.get(), found->ai_addr, found->ai_addrlen) != 0) {
            const int err = errno;
            // EADDRINUSE: another process (or a second cefd) has the port. EADDRNOTAVAIL: the
            // host is not an address of this machine. EACCES: a port below 1024 without the
            // capability.
            const Errc code = err == EACCES ? Errc::permission : Errc::address_in_use;
            return Error{code, err, "metrics.listen: cannot listen on " + listen + " (in use, or not a local address)"};
        }
        // The kernel queue only has to hold a burst until the next pass accepts it all.
        if (::listen(fd.get(), 1'024) != 0) return Error{Errc::io, errno, "metrics.listen: listen"};
        sockaddr_storage bound{};
        socklen_t length = sizeof bound;
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &length);
        port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                  : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
        listener_ = std::move(fd);

        epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
        wake_ = UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
        if (!epoll_.valid() || !wake_.valid()) return Error{Errc::io, errno, "metrics: epoll/eventfd"};
        watch(listener_.get(), EPOLLIN, &listener_tag_, EPOLL_CTL_ADD);
        watch(wake_.get(), EPOLLIN, &wake_tag_, EPOLL_CTL_ADD);
        return ok_status();
    }

    void register_metrics() {
        for (std::size_t i = 0; i < route_names.size(); ++i) {
            registry_.add("metrics_requests_total", "Requests the metrics endpoint answered, by path.",
                          std::string("path=\"/") + route_names[i] + "\"", &stats_.requests[i]);
        }
        for (std::size_t i = 0; i < reason_names.size(); ++i) {
            registry_.add("metrics_rejected_total",
                          "Requests or connections the metrics endpoint refused or closed, by reason.",
                          std::string("reason=\"") + reason_names[i] + "\"", &stats_.rejected[i]);
        }
        registry_.add("metrics_connections", "Connections to the metrics endpoint open now.", "", &stats_.open,
                      MetricsRegistry::Kind::gauge);
    }

    void start() {
        thread_ = std::jthread([this] {
            name_current_thread("cefd-metrics");
            try {
                run();
            } catch (const std::exception& error) {
                CEFD_LOG(error, "metrics: fatal: %s", error.what());
                std::_Exit(1);
            }
        });
    }

    void stop() {
        if (!thread_.joinable()) return;
        stopping_.store(true, std::memory_order_release);
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto written = ::write(wake_.get(), &one, sizeof one);
        thread_.join();
    }

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

private:
    void watch(int fd, std::uint32_t events, Pollable* tag, int op) {
        epoll_event event{};
        event.events = events;
        event.data.ptr = tag;
        if (::epoll_ctl(epoll_.get(), op, fd, &event) != 0 && op != EPOLL_CTL_DEL) {
            CEFD_LOG_EVERY(10, warn, "metrics: epoll_ctl: %s", std::strerror(errno));
        }
    }

    void run() {
        std::array<epoll_event, 64> events{};
        while (!stopping_.load(std::memory_order_acquire)) {
            const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), wait_ms());
            if (n < 0 && errno != EINTR) {
                CEFD_LOG_EVERY(10, warn, "metrics: epoll_wait: %s", std::strerror(errno));
                continue;
            }
            bool accept_ready = false;
            // Connections first, the listener last: an accept may evict a connection and reuse
            // its slot, and an event still queued for the old one must not reach the new one.
            for (int i = 0; i < n; ++i) {
                auto* tag = static_cast<Pollable*>(events[static_cast<std::size_t>(i)].data.ptr);
                if (tag->kind == Pollable::Kind::listener) accept_ready = true;
                if (tag->kind == Pollable::Kind::connection) {
                    on_event(*static_cast<Connection*>(tag), events[static_cast<std::size_t>(i)].events);
                }
            }
            const std::int64_t now = monotonic_ns();
            if (accept_ready) accept_pending(now);
            if (accept_paused_until_ns_ != 0 && now >= accept_paused_until_ns_) {
                accept_paused_until_ns_ = 0;
                watch(listener_.get(), EPOLLIN, &listener_tag_, EPOLL_CTL_MOD);
            }
            expire(now);
        }
        for (Connection& c : slots_)
            if (c.state != Connection::State::idle) close(c);
    }

    /// Milliseconds until the nearest deadline (rounded up), or -1 for none.
    int wait_ms() const {
        std::int64_t nearest = accept_paused_until_ns_;
        for (const Connection& c : slots_)
            if (c.state != Connection::State::idle && (nearest == 0 || c.deadline_ns < nearest)) nearest = c.deadline_ns;
        if (nearest == 0) return -1;
        const std::int64_t left = nearest - monotonic_ns();
        return left <= 0 ? 0 : static_cast<int>((left + 999'999) / 1'000'000);
    }

    void accept_pending(std::int64_t now) {
        for (int i = 0; i < accepts_per_pass; ++i) {
            UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
            if (!fd.valid()) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) return;
                if (errno == EINTR || errno == ECONNABORTED) continue;  // the client gave up meanwhile
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                    // Out of descriptors (the rest of cefd holds them): pause accepting, or the
                    // level-triggered listener would wake this loop for ever.
                    bump(stats_.rejected[static_cast<std::size_t>(Reason::no_descriptors)]);
                    CEFD_LOG_EVERY(10, warn, "metrics: accept: %s; pausing the endpoint briefly", std::strerror(errno));
                    accept_paused_until_ns_ = now + accept_pause_ns;
                    watch(listener_.get(), 0, &listener_tag_, EPOLL_CTL_MOD);
                    return;
                }
                CEFD_LOG_EVERY(10, warn, "metrics: accept: unexpected %s", std::strerror(errno));
                return;
            }
            Connection* slot = free_slot();
            if (slot == nullptr) {
                slot = &victim();
                bump(stats_.rejected[static_cast<std::size_t>(Reason::evicted)]);
                close(*slot);
            }
            slot->fd = std::move(fd);
            slot->state = Connection::State::reading;
            slot->accepted_ns = now;
            slot->deadline_ns = now + read_timeout_ns_;
            slot->used = 0;
            slot->sent = 0;
            slot->response.clear();
            watch(slot->fd.get(), EPOLLIN | EPOLLRDHUP, slot, EPOLL_CTL_ADD);
            bump(stats_.open);
        }
    }

    Connection* free_slot() {
        for (Connection& c : slots_)
            if (c.state == Connection::State::idle) return &c;
        return nullptr;
    }

    /// The connection to close for a new one: one already answered (lingering) if any, else
    /// the oldest one still reading, else the oldest one being written to.
    Connection& victim() {
        auto rank = [](const Connection& c) {
            switch (c.state) {
                case Connection::State::lingering: return 0;
                case Connection::State::reading: return 1;
                default: return 2;
            }
        };
        return *std::min_element(slots_.begin(), slots_.end(), [&](const Connection& a, const Connection& b) {
            return rank(a) != rank(b) ? rank(a) < rank(b) : a.accepted_ns < b.accepted_ns;
        });
    }

    void close(Connection& c) {
        watch(c.fd.get(), 0, &c, EPOLL_CTL_DEL);
        c.fd.reset();
        c.state = Connection::State::idle;
        c.response.clear();
        c.response.shrink_to_fit();  // a /metrics answer is ~100 KiB; do not keep 64 of them
        stats_.open.store(read(stats_.open) - 1, std::memory_order_relaxed);
    }

    void on_event(Connection& c, std::uint32_t events) {
        switch (c.state) {
            case Connection::State::reading: return on_readable(c);
            case Connection::State::writing:
                if ((events & (EPOLLERR | EPOLLHUP)) != 0) return close(c);
                return write_some(c);
            case Connection::State::lingering: return discard(c);
            case Connection::State::idle: return;
        }
    }

    void on_readable(Connection& c) {
        const ssize_t n = ::recv(c.fd.get(), c.request.get() + c.used, request_bytes_max - c.used, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            return close(c);  // ECONNRESET and the like: the client is gone
        }
        if (n == 0) return close(c);  // closed before sending a whole request: nothing to answer
        c.used += static_cast<std::size_t>(n);
        std::string_view method;
        std::string_view target;
        switch (parse_request({c.request.get(), c.used}, method, target)) {
            case Parse::incomplete: return;
            case Parse::malformed:
                return reject(c, Reason::malformed, 400, "Bad Request", "not an HTTP/1.x request\n");
            case Parse::too_large:
                return reject(c, Reason::too_large, 431, "Request Header Fields Too Large",
                              "request line and headers are limited to 8 KiB\n");
            case Parse::complete: break;
        }
        const bool head = method == "HEAD";
        if (method != "GET" && !head) return reject(c, Reason::method, 405, "Method Not Allowed", "GET only\n");
        const std::string_view path = target.substr(0, target.find('?'));
        if (path == "/metrics") {
            bump(stats_.requests[static_cast<std::size_t>(Route::metrics)]);
            return answer(c, http_response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", registry_.render(), head));
        }
        if (path == "/healthz") {
            bump(stats_.requests[static_cast<std::size_t>(Route::healthz)]);
            return answer(c, http_response(200, "OK", "text/plain; charset=utf-8", "ok\n", head));
        }
        if (path == "/readyz") {
            bump(stats_.requests[static_cast<std::size_t>(Route::readyz)]);
            const ReadinessChecks::Verdict verdict = checks_.evaluate();
            return answer(c, http_response(verdict.ready ? 200 : 503, verdict.ready ? "OK" : "Service Unavailable",
                                           "text/plain; charset=utf-8", verdict.body, head));
        }
        return reject(c, Reason::not_found, 404, "Not Found", "try /metrics, /healthz or /readyz\n");
    }

    void reject(Connection& c, Reason reason, int status, std::string_view text, std::string_view body) {
        bump(stats_.rejected[static_cast<std::size_t>(reason)]);
        answer(c, http_response(status, text, "text/plain; charset=utf-8", body, false));
    }

    void answer(Connection& c, std::string response) {
        c.response = std::move(response);
        c.sent = 0;
        c.state = Connection::State::writing;
        c.deadline_ns = monotonic_ns() + read_timeout_ns_;
        watch(c.fd.get(), EPOLLOUT, &c, EPOLL_CTL_MOD);
        write_some(c);  // usually the whole answer fits in the socket buffer now
    }

    void write_some(Connection& c) {
        while (c.sent < c.response.size()) {
            const ssize_t n = ::send(c.fd.get(), c.response.data() + c.sent, c.response.size() - c.sent, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // EPOLLOUT brings us back
                if (errno == EINTR) continue;
                return close(c);  // EPIPE / ECONNRESET: the client left
            }
            c.sent += static_cast<std::size_t>(n);
        }
        // All sent: half-close and read until the client closes too (lingering close).
        ::shutdown(c.fd.get(), SHUT_WR);
        c.response.clear();
        c.state = Connection::State::lingering;
        c.deadline_ns = monotonic_ns() + std::min(linger_ns, read_timeout_ns_);
        watch(c.fd.get(), EPOLLIN | EPOLLRDHUP, &c, EPOLL_CTL_MOD);
    }

    void discard(Connection& c) {
        for (int i = 0; i < 16; ++i) {  // bounded per pass; the deadline bounds it in all
            const ssize_t n = ::recv(c.fd.get(), c.request.get(), request_bytes_max, 0);
            if (n > 0) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
            return close(c);  // EOF or error: done
        }
    }

    void expire(std::int64_t now) {
        for (Connection& c : slots_) {
            if (c.state == Connection::State::idle || now < c.deadline_ns) continue;
            if (c.state == Connection::State::reading) bump(stats_.rejected[static_cast<std::size_t>(Reason::read_timeout)]);
            if (c.state == Connection::State::writing) bump(stats_.rejected[static_cast<std::size_t>(Reason::write_timeout)]);
            close(c);
        }
    }

    MetricsRegistry& registry_;
    const ReadinessChecks& checks_;
    const std::int64_t read_timeout_ns_;
    std::vector<Connection> slots_;
    Pollable listener_tag_{Pollable::Kind::listener};
    Pollable wake_tag_{Pollable::Kind::wake};
    UniqueFd listener_;
    UniqueFd epoll_;
    UniqueFd wake_;
    std::uint16_t port_ = 0;
    std::int64_t accept_paused_until_ns_ = 0;
    Stats stats_;
    std::atomic<bool> stopping_{false};
    std::jthread thread_;
};

Result<std::unique_ptr<MetricsServer>> MetricsServer::open(const MetricsConfig& config, MetricsRegistry& registry,
                                                           const ReadinessChecks& checks) {
    auto impl = std::make_unique<Impl>(config, registry, checks);
    if (auto bound = impl->bind(config.listen); !bound) return bound.error();
    impl->register_metrics();
    return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MetricsServer::~MetricsServer() = default;
void MetricsServer::start() { impl_->start(); }
void MetricsServer::stop() { impl_->stop(); }
std::uint16_t MetricsServer::port() const noexcept { return impl_->port(); }

}  // namespace cefd
