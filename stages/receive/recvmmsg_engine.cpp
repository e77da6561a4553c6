// stages/receive/recvmmsg_engine.cpp: the fallback engine, for kernels or sandboxes without a
// usable io_uring: recvmmsg for UDP, level-triggered epoll + read for TCP.
//
// UDP: up to 16 recvmmsg calls of 64 datagrams per readiness event, into buffers allocated at
// open. TCP: accept4 until EAGAIN (a PolledListener: after EMFILE it leaves the epoll set for
// 100 ms), then one read per readable connection per pass into the connection's buffer; the
// lane's ConnectionTable frames, pauses (this engine takes a paused connection out of the epoll
// interest set; the table retries it every millisecond), times out and closes. TLS: the lane's
// TlsServer (tls.h) keeps its own epoll set, which sits in this one as a single fd.
// epoll_wait waits at most 50 ms, so run() notices a stop request in time.
//
// Batched waits, like the io_uring engine's: after a pass that read some datagrams but fewer
// than a full recvmmsg (and nothing else), the thread sleeps before its next epoll_wait, so a
// steady stream costs one wake-up per batch instead of one per datagram: 3 ms when the kernel
// granted the socket at least 4 MiB of receive buffer (about 1,800 853-byte datagrams: a burst
// of 600k/s before the sleep ends fits), else 1 ms. At 30k events/s the 1 ms wake-ups were the
// largest cost that does not shrink with the rate (bench/README.md, "Receive sleep").
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "engine/clock.h"
#include "engine/log.h"
#include "stages/receive/connection_table.h"
#include "stages/receive/engine.h"
#include "stages/receive/tls.h"

namespace cefd::receive {
namespace {

constexpr unsigned datagrams_per_call = DatagramReader::batch_max;
constexpr unsigned calls_per_event_max = 16;
constexpr unsigned accepts_per_event_max = 256;
constexpr int events_max = 256;
constexpr std::int64_t wait_idle_ns = 50'000'000;  // stop requests are seen within this
constexpr std::int64_t coalesce_ns = 1'000'000;       // the most a busy lane adds to latency
constexpr std::int64_t coalesce_long_ns = 3'000'000;  // ... when the socket buffer is large
constexpr int coalesce_long_rcvbuf = 4 << 20;         // usable bytes (usable_receive_buffer)

class RecvmmsgEngine final : public Engine, private ConnectionDriver {
public:
    RecvmmsgEngine(const ReceiveConfig& config, unsigned lane, unsigned lanes, ByteRing& ring, ReceiveStats& stats,
                   std::atomic<bool>& reload_requested)
        : intake_(config, lane, lanes, ring, stats, reload_requested), table_(intake_) {}

    Status open() {
        epoll_fd_ = UniqueFd{::epoll_create1(EPOLL_CLOEXEC)};
        if (!epoll_fd_.valid()) return Error{Errc::io, errno, "receive: epoll_create1"};
        if (intake_.config.udp_port != 0) {
            auto fd = open_udp_socket(intake_);
            if (!fd) return fd.error();
            udp_fd_ = std::move(fd).value();
            if (usable_receive_buffer(udp_fd_.get()) >= coalesce_long_rcvbuf) coalesce_ns_ = coalesce_long_ns;
            if (!watch(udp_fd_.get(), EPOLLIN, &udp_completion_))
                return Error{Errc::io, errno, "receive: epoll_ctl for UDP"};
            datagrams_.emplace(intake_);
        }
        if (intake_.config.tcp_port != 0) {
            auto fd = open_tcp_listener(intake_, true);
            if (!fd) return fd.error();
            listener_.fd = std::move(fd).value();
            if (!listener_.watch(epoll_fd_.get(), &listener_completion_))
                return Error{Errc::io, errno, "receive: epoll_ctl for TCP"};
        }
        auto tls = open_tls_server(intake_, table_);
        if (!tls) return tls.error();
        tls_ = std::move(tls).value();
        if (tls_ != nullptr && !watch(tls_->fd(), EPOLLIN, &tls_completion_))
            return Error{Errc::io, errno, "receive: epoll_ctl for TLS"};
        return ok_status();
    }

    [[nodiscard]] const char* name() const noexcept override { return "recvmmsg"; }
    [[nodiscard]] int udp_fd() const noexcept override { return udp_fd_.valid() ? udp_fd_.get() : -1; }

    void run(std::stop_token stop) override {
        epoll_event events[events_max];
        bool coalesce = false;  // the last pass read a partial batch of datagrams, nothing else
        while (!stop.stop_requested()) {
            if (coalesce) {
                const timespec pause{.tv_sec = 0, .tv_nsec = coalesce_ns_};
                ::clock_nanosleep(CLOCK_MONOTONIC, 0, &pause, nullptr);
            }
            const int ready = ::epoll_wait(epoll_fd_.get(), events, events_max, wait_ms());
            if (ready < 0 && errno != EINTR)
                CEFD_LOG_EVERY(10, error, "receive: %s epoll_wait failed: %s", intake_.name.c_str(),
                               std::strerror(errno));
            now_ns_ = wall_clock_ns();
            monotonic_now_ns_ = monotonic_ns();
            table_.set_clock(now_ns_, monotonic_now_ns_);
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
            const std::uint64_t seen = batch_.seen();
            coalesce = only_udp && seen != 0 && seen < datagrams_per_call && !table_.any_paused();
            intake_.flush(batch_, udp_fd());
            listener_.rewatch_if_due(monotonic_now_ns_);
            if (!serve_streams(intake_, table_, tls_.get(), tls_ready)) coalesce = false;
        }
        // No read outlives a pass: nothing to cancel before the drain.
        take_backlog_at_stop(listener_.fd, table_, *this, intake_.stats);
        if (tls_ != nullptr) tls_->stop_listening();
        drain_at_stop(intake_, table_, udp_fd());
        udp_fd_.reset();  // counted up to here: from now on senders get a port unreachable
    }

private:
    // How long epoll_wait may sleep: short while connections wait for ring space or TLS has
    // work epoll cannot see.
    int wait_ms() const noexcept {
        const std::int64_t ns = stream_wait_ns(table_, tls_.get(), wait_idle_ns);
        return static_cast<int>((ns + 999'999) / 1'000'000);
    }

    bool watch(int fd, std::uint32_t events, Completion* completion) {
        epoll_event event{};
        event.events = events;
        event.data.ptr = completion;
        return ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &event) == 0;
    }

    // ConnectionDriver: level-triggered epoll. A paused connection leaves the set: epoll reports a
    // hang-up or an error whatever the interest, so a paused connection the peer reset would wake
    // every wait (a spin); its end of stream is read when it resumes.
    void resume_reads(Connection& connection) override {
        if (!watch(connection.fd.get(), EPOLLIN | EPOLLRDHUP, connection.completion()))
            CEFD_LOG_EVERY(10, error, "receive: lane %u epoll_ctl for a connection: %s", intake_.lane,
                           std::strerror(errno));
    }
    void pause_reads(Connection& connection) override {
        ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, connection.fd.get(), nullptr);
    }
    bool cancel_reads(Connection&) override { return false; }  // reads never outlive a pass
    void on_close(Connection&) override { bump(intake_.stats.tcp_closed); }

    void on_udp() {
        for (unsigned call = 0; call < calls_per_event_max; ++call) {
            const int received = datagrams_->read(udp_fd_.get(), datagrams_per_call, now_ns_, batch_);
            if (received < 0) {
                if (errno != EAGAIN && errno != EINTR)
                    CEFD_LOG_EVERY(10, error, "receive: %s recvmmsg failed: %s", intake_.name.c_str(),
                                   std::strerror(errno));
                return;
            }
            if (static_cast<unsigned>(received) < datagrams_per_call) return;
        }
    }

    void on_accept() {
        listener_.accept_batch(
            accepts_per_event_max, monotonic_now_ns_, intake_.lane, "TCP", intake_.stats,
            [&](UniqueFd fd, const SourceAddress& peer) {
                Connection* c = table_.accept(std::move(fd), peer, Transport::tcp, *this);
                if (c == nullptr) return;  // refused, counted
                bump(intake_.stats.tcp_accepted);
                if (!watch(c->fd.get(), EPOLLIN | EPOLLRDHUP, c->completion())) {
                    CEFD_LOG_EVERY(10, error, "receive: lane %u epoll_ctl for a connection: %s",
                                   intake_.lane, std::strerror(errno));
                    table_.close(*c);
                }
            });
    }

    void on_readable(Connection& connection) {
        // A stale event: from before the pause, or for a connection closed earlier this pass.
        if (connection.paused || connection.closed) return;
        const ssize_t n = ::read(connection.fd.get(), connection.read_at(), connection.room());
        if (n > 0) {
            table_.on_read(connection, static_cast<std::size_t>(n));
        } else if (n == 0) {
            connection.eof = true;
        } else if (errno == EAGAIN || errno == EINTR) {
            return;
        } else {
            if (errno != ECONNRESET && errno != ETIMEDOUT)  // a peer reset is routine
                CEFD_LOG_EVERY(10, warn, "receive: lane %u TCP read from %s failed: %s",
                               intake_.lane, connection.source.to_string().c_str(),
                               std::strerror(errno));
            connection.eof = true;
        }
        table_.process(connection);  // level-triggered: the next event reads again
    }

    Intake intake_;
    ConnectionTable table_;
    std::unique_ptr<TlsServer> tls_;  // null unless tls_cert_file is set
    UniqueFd epoll_fd_;
    std::int64_t coalesce_ns_ = coalesce_ns;  // coalesce_long_ns with a large socket buffer
    UniqueFd udp_fd_;
    PolledListener listener_;
    Completion udp_completion_{Completion::Kind::udp};
    Completion listener_completion_{Completion::Kind::listener};
    Completion tls_completion_{Completion::Kind::tls};
    std::optional<DatagramReader> datagrams_;  // UDP on
    UdpBatch batch_;
    std::int64_t now_ns_ = 0;
    std::int64_t monotonic_now_ns_ = 0;
};

}  // namespace

Result<std::unique_ptr<Engine>> open_recvmmsg_engine(const ReceiveConfig& config, unsigned lane, unsigned lanes,
                                                     ByteRing& ring, ReceiveStats& stats,
                                                     std::atomic<bool>& reload_requested) {
    return open_engine<RecvmmsgEngine>(config, lane, lanes, ring, stats, reload_requested);
}

}  // namespace cefd::receive
