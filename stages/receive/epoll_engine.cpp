// stages/receive/epoll_engine.cpp: the fallback engine, for kernels or sandboxes without a
// usable io_uring: recvmmsg for UDP, level-triggered epoll + read for TCP.
//
// UDP: up to 16 recvmmsg calls of 64 datagrams per readiness event, into buffers allocated at
// open. TCP: accept4 until EAGAIN, then one read per readable connection per pass into the
// connection's buffer. A connection whose frames do not fit in the lane ring is taken out of
// the epoll interest set (paused) and retried every millisecond until they fit. TLS: the lane's
// TlsServer (tls.h) keeps its own epoll set, which sits in this one as a single fd.
// epoll_wait waits at most 50 ms, so run() notices a stop request in time.
//
// Batched waits, like the io_uring engine's: after a pass that read some datagrams but fewer
// than a full recvmmsg (and nothing else), the thread sleeps coalesce_ns (1 ms) before its next
// epoll_wait, so a steady stream costs one wake-up per batch instead of one per datagram.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "engine/clock.h"
#include "engine/log.h"
#include "stages/receive/engine_base.h"
#include "stages/receive/tls.h"

namespace cefd::receive {
namespace {

constexpr unsigned datagrams_per_call = 64;
constexpr unsigned calls_per_event_max = 16;
constexpr unsigned accepts_per_event_max = 256;
constexpr int events_max = 256;
constexpr int wait_idle_ms = 50;
constexpr int wait_paused_ms = 1;
constexpr std::int64_t coalesce_ns = 1'000'000;  // the most a busy lane adds to latency
constexpr std::size_t control_bytes = CMSG_SPACE(sizeof(std::uint32_t)) + 16;

class EpollEngine final : public EngineBase {
public:
    using EngineBase::EngineBase;

    ~EpollEngine() override {
        for (std::size_t i = 0; i < connections_.size(); ++i) release_connection();
    }

    Status open() {
        epoll_fd_ = UniqueFd{::epoll_create1(EPOLL_CLOEXEC)};
        if (!epoll_fd_.valid()) return Error{Errc::io, errno, "receive: epoll_create1"};
        if (config_.udp_port != 0) {
            auto address = ListenAddress::parse(config_.listen, config_.udp_port);
            if (!address) return address.error();
            auto fd = open_udp_socket(address.value(), config_.rcvbuf_bytes, udp_text_);
            if (!fd) return fd.error();
            udp_fd_ = std::move(fd).value();
            if (!watch(udp_fd_.get(), EPOLLIN, &udp_completion_))
                return Error{Errc::io, errno, "receive: epoll_ctl for UDP"};
            payloads_.resize(std::size_t{datagrams_per_call} * datagram_limit_);
            controls_.resize(std::size_t{datagrams_per_call} * control_bytes);
            names_.resize(datagrams_per_call);
            iovecs_.resize(datagrams_per_call);
            messages_.resize(datagrams_per_call);
            for (unsigned i = 0; i < datagrams_per_call; ++i) {
                iovecs_[i] = {payloads_.data() + std::size_t{i} * datagram_limit_, datagram_limit_};
                msghdr& msg = messages_[i].msg_hdr;
                msg.msg_name = &names_[i];
                msg.msg_iov = &iovecs_[i];
                msg.msg_iovlen = 1;
                msg.msg_control = controls_.data() + std::size_t{i} * control_bytes;
            }
        }
        if (config_.tcp_port != 0) {
            auto address = ListenAddress::parse(config_.listen, config_.tcp_port);
            if (!address) return address.error();
            auto fd = open_tcp_listener(address.value(), true, tcp_text_);
            if (!fd) return fd.error();
            tcp_fd_ = std::move(fd).value();
            if (!watch(tcp_fd_.get(), EPOLLIN, &listener_completion_))
                return Error{Errc::io, errno, "receive: epoll_ctl for TCP"};
            connections_.reserve(std::min<std::uint32_t>(config_.tcp_max_connections, 65'536));
        }
        if (auto status = open_tls(); !status) return status.error();
        if (tls_ != nullptr && !watch(tls_->fd(), EPOLLIN, &tls_completion_))
            return Error{Errc::io, errno, "receive: epoll_ctl for TLS"};
        return ok_status();
    }

    [[nodiscard]] const char* name() const noexcept override { return "recvmmsg"; }

    void run(std::stop_token stop) override {
        const std::int64_t idle_ns = std::int64_t{config_.tcp_idle_timeout_ms} * 1'000'000;
        const std::int64_t idle_scan_ns = std::clamp<std::int64_t>(idle_ns / 4, 1'000'000,
                                                                   1'000'000'000);
        std::int64_t next_idle_scan_ns = monotonic_ns() + idle_scan_ns;
        epoll_event events[events_max];
        bool coalesce = false;  // the last pass read a partial batch of datagrams, nothing else
        while (!stop.stop_requested()) {
            if (coalesce) {
                const timespec pause{.tv_sec = 0, .tv_nsec = coalesce_ns};
                ::clock_nanosleep(CLOCK_MONOTONIC, 0, &pause, nullptr);
            }
            const int ready = ::epoll_wait(epoll_fd_.get(), events, events_max, wait_ms());
            if (ready < 0 && errno != EINTR)
                CEFD_LOG_EVERY(10, error, "receive: lane %u epoll_wait failed: %s", lane_,
                               std::strerror(errno));
            now_ns_ = wall_clock_ns();
            monotonic_now_ns_ = monotonic_ns();
            bool tls_ready = false;
            bool only_udp = true;
            for (int i = 0; i < ready; ++i) {
                auto* completion = static_cast<Completion*>(events[i].data.ptr);
                switch (completion->kind) {
                    case Completion::Kind::udp: on_udp(); continue;
                    case Completion::Kind::listener: on_accept(); break;
                    case Completion::Kind::connection:
                        on_readable(static_cast<Connection&>(*completion));
                        break;
                    case Completion::Kind::tls: tls_ready = true; break;
                }
                only_udp = false;
            }
            // Coalesce only after some datagrams but less than one full recvmmsg (a full one
            // means we are behind), and never when connections had work: their reads are not
            // delayed.
            const std::uint64_t datagrams_seen =
                batch_.datagrams + batch_.oversize + batch_.empty + batch_.ring_full;
            coalesce = only_udp && datagrams_seen != 0 && datagrams_seen < datagrams_per_call &&
                       paused_.empty();
            flush(batch_);
            batch_ = {};
            if (!paused_.empty()) resume_paused();
            if (tls_ != nullptr) {
                if (tls_ready || tls_->wait_ns_max() >= 0) tls_->service(now_ns_, monotonic_now_ns_);
                if (tls_->wait_ns_max() >= 0) coalesce = false;
            }
            reload_if_requested();
            if (monotonic_now_ns_ >= next_idle_scan_ns) {
                close_idle(idle_ns);
                if (tls_ != nullptr) tls_->close_idle(idle_ns, now_ns_, monotonic_now_ns_);
                next_idle_scan_ns = monotonic_now_ns_ + idle_scan_ns;
            }
        }
    }

private:
    // How long epoll_wait may sleep: short while connections wait for ring space or TLS has
    // work epoll cannot see.
    int wait_ms() const noexcept {
        int ms = paused_.empty() ? wait_idle_ms : wait_paused_ms;
        if (tls_ != nullptr) {
            const std::int64_t tls_ns = tls_->wait_ns_max();
            if (tls_ns == 0) return 0;
            if (tls_ns > 0) ms = std::min(ms, static_cast<int>((tls_ns + 999'999) / 1'000'000));
        }
        return ms;
    }

    bool watch(int fd, std::uint32_t events, Completion* completion) {
        epoll_event event{};
        event.events = events;
        event.data.ptr = completion;
        return ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &event) == 0;
    }
    void change(Connection& connection, std::uint32_t events) {
        epoll_event event{};
        event.events = events;
        event.data.ptr = &connection;
        ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, connection.fd.get(), &event);
    }

    void on_udp() {
        for (unsigned call = 0; call < calls_per_event_max; ++call) {
            for (auto& message : messages_) {
                message.msg_hdr.msg_namelen = sizeof(sockaddr_storage);
                message.msg_hdr.msg_controllen = control_bytes;
                message.msg_hdr.msg_flags = 0;
            }
            const int received = ::recvmmsg(udp_fd_.get(), messages_.data(), datagrams_per_call,
                                            MSG_DONTWAIT, nullptr);
            if (received < 0) {
                if (errno != EAGAIN && errno != EINTR)
                    CEFD_LOG_EVERY(10, error, "receive: lane %u recvmmsg failed: %s", lane_,
                                   std::strerror(errno));
                return;
            }
            for (int i = 0; i < received; ++i) {
                msghdr& msg = messages_[static_cast<std::size_t>(i)].msg_hdr;
                for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
                    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
                        std::uint32_t drops = 0;
                        std::memcpy(&drops, CMSG_DATA(c), sizeof drops);
                        batch_.kernel_drops = std::max(batch_.kernel_drops, drops);
                    }
                }
                const std::string_view payload(static_cast<const char*>(msg.msg_iov->iov_base),
                                               messages_[static_cast<std::size_t>(i)].msg_len);
                const auto* peer = msg.msg_namelen != 0 ? static_cast<const sockaddr*>(msg.msg_name)
                                                        : nullptr;
                on_datagram(peer, payload, (msg.msg_flags & MSG_TRUNC) != 0, now_ns_, batch_);
            }
            if (static_cast<unsigned>(received) < datagrams_per_call) return;
        }
    }

    void on_accept() {
        for (unsigned i = 0; i < accepts_per_event_max; ++i) {
            sockaddr_storage peer{};
            UniqueFd fd = accept_pending(tcp_fd_.get(), peer, lane_, "TCP");
            if (!fd.valid()) return;
            if (!try_reserve_connection(config_.tcp_max_connections)) {
                bump(stats->tcp_rejected);
                CEFD_LOG_EVERY(10, warn,
                               "receive: lane %u TCP connection refused: %u open, the limit "
                               "(receive.tcp_max_connections)",
                               lane_, config_.tcp_max_connections);
                continue;  // closed by UniqueFd
            }
            auto connection = std::make_unique<Connection>(
                std::move(fd), SourceAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&peer)),
                frame_limit_, monotonic_now_ns_);
            connection->index = connections_.size();
            Connection& c = *connections_.emplace_back(std::move(connection));
            bump(stats->tcp_accepted);
            if (!watch(c.fd.get(), EPOLLIN | EPOLLRDHUP, &c)) {
                CEFD_LOG_EVERY(10, error, "receive: lane %u epoll_ctl for a connection: %s", lane_,
                               std::strerror(errno));
                close(c);
            }
        }
    }

    void on_readable(Connection& connection) {
        if (connection.paused) return;  // a stale event from before the pause
        const ssize_t n = ::read(connection.fd.get(), connection.buffer.get() + connection.end,
                                 connection.room());
        if (n > 0) {
            connection.end += static_cast<std::size_t>(n);
            connection.last_activity_ns = monotonic_now_ns_;
        } else if (n == 0) {
            connection.eof = true;
        } else if (errno == EAGAIN || errno == EINTR) {
            return;
        } else {
            if (errno != ECONNRESET && errno != ETIMEDOUT)  // a peer reset is routine
                CEFD_LOG_EVERY(10, warn, "receive: lane %u TCP read from %s failed: %s", lane_,
                               connection.source.to_string().c_str(), std::strerror(errno));
            connection.eof = true;
        }
        process(connection);
    }

    void process(Connection& connection) {
        switch (deliver_frames(connection, now_ns_)) {
            case FrameStatus::bad_frame:
                close(connection);
                return;
            case FrameStatus::blocked:
                if (!connection.paused) {
                    connection.paused = true;
                    paused_.push_back(&connection);
                    change(connection, 0);  // stop reading: backpressure to the sender
                }
                return;
            case FrameStatus::need_more:
                break;
        }
        if (connection.eof) {
            close(connection);
            return;
        }
        CEFD_ASSERT(connection.room() != 0);
    }

    void resume_paused() {
        for (std::size_t i = paused_.size(); i-- > 0;) {
            Connection& connection = *paused_[i];
            connection.paused = false;
            paused_[i] = paused_.back();
            paused_.pop_back();
            process(connection);
            if (!connection.paused && !connection.eof) change(connection, EPOLLIN | EPOLLRDHUP);
        }
    }

    // Closing the socket also removes it from the epoll set.
    void close(Connection& connection) {
        if (connection.paused) std::erase(paused_, &connection);
        bump(stats->tcp_closed);
        release_connection();
        const std::size_t index = connection.index;
        if (index + 1 != connections_.size()) {
            connections_[index] = std::move(connections_.back());
            connections_[index]->index = index;
        }
        connections_.pop_back();
    }

    void close_idle(std::int64_t idle_ns) {
        for (std::size_t i = connections_.size(); i-- > 0;) {
            Connection& connection = *connections_[i];
            if (connection.paused) continue;
            if (monotonic_now_ns_ - connection.last_activity_ns < idle_ns) continue;
            // Bytes that arrived since epoll_wait returned: not idle after all, and closing now
            // would throw them away. The next pass reads them.
            char byte = 0;
            if (::recv(connection.fd.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
                connection.last_activity_ns = monotonic_now_ns_;
                continue;
            }
            bump(stats->tcp_idle_closed);
            // As at the peer's end of stream: an unterminated last frame is delivered (an
            // octet-counted one flagged and counted as partial) before the close.
            connection.eof = true;
            process(connection);
        }
    }

    UniqueFd epoll_fd_;
    UniqueFd udp_fd_;
    UniqueFd tcp_fd_;
    Completion udp_completion_{Completion::Kind::udp};
    Completion listener_completion_{Completion::Kind::listener};
    Completion tls_completion_{Completion::Kind::tls};
    std::vector<char> payloads_;
    std::vector<char> controls_;
    std::vector<sockaddr_storage> names_;
    std::vector<iovec> iovecs_;
    std::vector<mmsghdr> messages_;
    std::vector<std::unique_ptr<Connection>> connections_;
    std::vector<Connection*> paused_;
    UdpBatch batch_;
    std::int64_t now_ns_ = 0;
    std::int64_t monotonic_now_ns_ = 0;
};

}  // namespace

Result<std::unique_ptr<Receiver::Impl>> open_epoll_engine(const ReceiveConfig& config,
                                                          unsigned lane, ByteRing& ring) {
    auto engine = std::make_unique<EpollEngine>(config, lane, ring);
    if (auto status = engine->open(); !status) return status.error();
    return std::unique_ptr<Receiver::Impl>(std::move(engine));
}

}  // namespace cefd::receive
