// stages/receive/uring_engine.cpp: the io_uring receive engine.
//
// UDP: one multishot IORING_OP_RECVMSG per lane socket, reading into a provided-buffer ring
// (buffers_per_core buffers, each an io_uring_recvmsg_out header + sender address +
// datagram_bytes_max payload; the kernel's drop count is read once per pass, udp_socket_drops).
// Each datagram is copied into the lane ring and its buffer goes back to the buffer ring at
// once. -ENOBUFS (all buffers in use) ends the multishot; it is counted and re-armed.
// TCP: a multishot accept on the lane listener (after EMFILE and the like it is re-armed only
// after AcceptBackoff's 100 ms), then one single-shot recv per connection into the connection's
// own buffer, re-armed after each completion. The lane's ConnectionTable frames, pauses (no recv
// is armed while the lane ring is full; a 1 ms wait retries), times out and closes; an idle or
// evicted connection with a recv in flight is cancelled first and closes on its completion.
// TLS: the lane's TlsServer (tls.h) keeps its own epoll set; a multishot poll on that set's fd
// tells this loop when to call it.
// The loop waits at most 50 ms for completions, so run() notices a stop request in time.
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "engine/clock.h"
#include "engine/log.h"
#include "stages/receive/connection_table.h"
#include "stages/receive/engine.h"
#include "stages/receive/tls.h"

namespace cefd::receive {
namespace {

constexpr unsigned submission_entries = 1024;
constexpr unsigned completion_entries = 16384;
constexpr unsigned cqes_per_pass_max = 4096;
constexpr std::uint16_t buffer_group = 0;
constexpr std::int64_t wait_idle_ns = 50'000'000;   // stop requests are seen within this
constexpr std::int64_t coalesce_ns = 1'000'000;     // the most a busy lane adds to latency
constexpr unsigned wait_batch_max = 64;

/// How many completions a busy lane waits for (or coalesce_ns, whichever comes first): at most
/// a quarter of the provided buffers, so the kernel never runs out of buffers while the lane
/// waits. Waiting for 64 with 64 or fewer buffers meant one batch per coalesce_ns (1 ms) at
/// most: with 32 buffers a lane took 32k datagrams/s and the kernel dropped the rest
/// (bench/README.md, "io_uring buffer count").
constexpr unsigned wait_batch_for(std::uint32_t buffers) noexcept {
    return std::clamp<unsigned>(buffers / 4, 1, wait_batch_max);
}

// Room in every provided buffer in front of the payload: the header the kernel writes and the
// sender's address.
constexpr std::size_t name_bytes = sizeof(sockaddr_storage);
constexpr std::size_t header_bytes = sizeof(io_uring_recvmsg_out) + name_bytes;

std::string uring_reason(int err) {
    switch (err) {
        case EPERM:  // sysctl kernel.io_uring_disabled=2 (or 1 without the group), or seccomp
            return "io_uring_setup: permission denied (kernel.io_uring_disabled or a seccomp "
                   "profile, e.g. Docker's default, blocks io_uring)";
        case ENOSYS:  // kernel built without io_uring, or seccomp returning ENOSYS
            return "io_uring_setup: not implemented (kernel without io_uring, or seccomp)";
        case ENOMEM:  // RLIMIT_MEMLOCK too small on kernels before 5.12
            return "io_uring_setup: out of memory (RLIMIT_MEMLOCK too small on an old kernel)";
        default:
            return std::string("io_uring_setup failed: ") + std::strerror(err);
    }
}

/// An owned io_uring instance.
class Ring {
public:
    Ring() = default;
    ~Ring() {
        if (live_) io_uring_queue_exit(&ring_);
    }
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;

    int init(unsigned entries, unsigned cq_entries) {
        // DEFER_TASKRUN (6.1+): the kernel finishes receives only when this thread waits, and
        // wakes it only once `wait_nr` completions are ready, so a burst costs one wake-up
        // instead of one per datagram (measured: see README.md). It needs SINGLE_ISSUER, and
        // R_DISABLED lets open() register buffers before run() becomes the one issuer.
        // COOP_TASKRUN (5.19+) is the fallback: no inter-processor interrupt per completion.
        const unsigned tries[] = {
            IORING_SETUP_R_DISABLED | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
            IORING_SETUP_COOP_TASKRUN,
            0,
        };
        int rc = -EINVAL;
        for (const unsigned flags : tries) {
            io_uring_params params{};
            params.flags = IORING_SETUP_CQSIZE | flags;
            params.cq_entries = cq_entries;
            rc = io_uring_queue_init_params(entries, &ring_, &params);
            if (rc != -EINVAL) {
                disabled_ = rc == 0 && (flags & IORING_SETUP_R_DISABLED) != 0;
                deferred_ = disabled_;
                break;
            }
        }
        live_ = rc == 0;
        return rc;
    }
    /// Makes the calling thread the ring's only issuer. Call first thing in run().
    int enable() {
        if (!disabled_) return 0;
        disabled_ = false;
        // liburing 2.3 declares io_uring_enable_rings but its library does not export it.
        const long rc = ::syscall(__NR_io_uring_register, ring_.ring_fd,
                                  IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
        return rc < 0 ? -errno : 0;
    }
    /// True when completions wait for this thread (DEFER_TASKRUN).
    [[nodiscard]] bool deferred() const noexcept { return deferred_; }
    io_uring* get() noexcept { return &ring_; }

    io_uring_sqe* sqe() noexcept {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (sqe == nullptr) {  // the submission queue is full: hand it to the kernel first
            io_uring_submit(&ring_);
            sqe = io_uring_get_sqe(&ring_);
        }
        CEFD_ASSERT(sqe != nullptr);
        return sqe;
    }

private:
    io_uring ring_{};
    bool live_ = false;
    bool disabled_ = false;
    bool deferred_ = false;
};

/// An anonymous mapping, unmapped on destruction.
class Mapping {
public:
    Mapping() = default;
    ~Mapping() {
        if (data_ != nullptr) ::munmap(data_, bytes_);
    }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    bool map(std::size_t bytes) {
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return false;
        data_ = static_cast<std::byte*>(p);
        bytes_ = bytes;
        return true;
    }
    [[nodiscard]] std::byte* data() const noexcept { return data_; }

private:
    std::byte* data_ = nullptr;
    std::size_t bytes_ = 0;
};

/// Provided buffers for multishot recvmsg, registered with io_uring_register_buf_ring (liburing
/// 2.3 has no io_uring_setup_buf_ring, so the ring memory is mapped here).
class BufferRing {
public:
    int init(io_uring* ring, std::uint32_t entries, std::size_t buffer_bytes) {
        entries_ = entries;
        buffer_bytes_ = buffer_bytes;
        mask_ = io_uring_buf_ring_mask(entries);
        if (!ring_memory_.map(entries * sizeof(io_uring_buf)) ||
            !buffers_.map(entries * buffer_bytes))
            return -ENOMEM;
        ring_ = reinterpret_cast<io_uring_buf_ring*>(ring_memory_.data());
        io_uring_buf_ring_init(ring_);
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<std::uint64_t>(ring_);
        reg.ring_entries = entries;
        reg.bgid = buffer_group;
        if (const int rc = io_uring_register_buf_ring(ring, &reg, 0); rc != 0) return rc;
        for (std::uint32_t i = 0; i < entries; ++i)
            io_uring_buf_ring_add(ring_, buffer(i), static_cast<unsigned>(buffer_bytes),
                                  static_cast<unsigned short>(i), mask_, static_cast<int>(i));
        io_uring_buf_ring_advance(ring_, static_cast<int>(entries));
        return 0;
    }
    [[nodiscard]] std::byte* buffer(std::uint32_t id) const noexcept {
        return buffers_.data() + std::size_t{id} * buffer_bytes_;
    }
    /// Queues buffer `id` for the kernel; publish() hands every queued one back at once.
    void give_back(std::uint32_t id) noexcept {
        io_uring_buf_ring_add(ring_, buffer(id), static_cast<unsigned>(buffer_bytes_),
                              static_cast<unsigned short>(id), mask_, static_cast<int>(queued_));
        ++queued_;
    }
    /// One release store of the tail per pass, not one per datagram.
    void publish() noexcept {
        if (queued_ == 0) return;
        io_uring_buf_ring_advance(ring_, static_cast<int>(queued_));
        queued_ = 0;
    }
    [[nodiscard]] std::size_t buffer_bytes() const noexcept { return buffer_bytes_; }

private:
    Mapping ring_memory_;
    Mapping buffers_;
    io_uring_buf_ring* ring_ = nullptr;
    std::uint32_t entries_ = 0;
    std::uint32_t queued_ = 0;  // given back since the last publish()
    std::size_t buffer_bytes_ = 0;
    int mask_ = 0;
};

msghdr recvmsg_template() {
    msghdr msg{};
    msg.msg_namelen = name_bytes;
    return msg;
}

class UringEngine final : public Engine, private ConnectionDriver {
public:
    UringEngine(const ReceiveConfig& config, unsigned lane, unsigned lanes, ByteRing& ring, ReceiveStats& stats,
                std::atomic<bool>& reload_requested)
        : intake_(config, lane, lanes, ring, stats, reload_requested), table_(intake_) {}

    Status open() {
        if (const int rc = ring_.init(submission_entries, completion_entries); rc < 0)
            return Error{Errc::uring_unavailable, -rc, "receive: " + uring_reason(-rc)};
        if (intake_.config.udp_port != 0) {
            auto fd = open_udp_socket(intake_);
            if (!fd) return fd.error();
            udp_fd_ = std::move(fd).value();
            const std::size_t buffer_bytes =
                (header_bytes + intake_.datagram_limit + 63) & ~std::size_t{63};
            if (const int rc = buffers_.init(ring_.get(), intake_.config.buffers_per_core,
                                             buffer_bytes);
                rc != 0)
                return Error{Errc::uring_unavailable, -rc,
                             "receive: registering the provided-buffer ring failed (kernel "
                             "older than 5.19?)"};
        }
        if (intake_.config.tcp_port != 0) {
            auto fd = open_tcp_listener(intake_, false);
            if (!fd) return fd.error();
            tcp_fd_ = std::move(fd).value();
        }
        auto tls = open_tls_server(intake_, table_);
        if (!tls) return tls.error();
        tls_ = std::move(tls).value();
        return ok_status();
    }

    [[nodiscard]] const char* name() const noexcept override { return "io_uring"; }
    [[nodiscard]] int udp_fd() const noexcept override { return udp_fd_.valid() ? udp_fd_.get() : -1; }

    void run(std::stop_token stop) override {
        if (const int rc = ring_.enable(); rc < 0) {
            CEFD_LOG(error, "receive: %s cannot enable its io_uring: %s", intake_.name.c_str(), std::strerror(-rc));
            return;
        }
        if (udp_fd_.valid()) arm_udp();
        if (tcp_fd_.valid()) arm_accept();
        if (tls_ != nullptr) arm_tls();
        unsigned last_pass = 0;  // completions seen by the previous pass
        while (!stop.stop_requested()) {
            // Idle: sleep until the first completion. Busy: gather up to wait_batch_ completions
            // for at most coalesce_ns, so that a steady stream costs one wake-up per batch.
            const bool busy = last_pass != 0 && ring_.deferred();
            std::int64_t wait_ns =
                stream_wait_ns(table_, tls_.get(), busy ? coalesce_ns : wait_idle_ns);
            if (accept_rearm_) {  // resting after EMFILE: wake when the rest is over
                const std::int64_t rest_ns = accept_backoff_.retry_at_ns() - monotonic_now_ns_;
                wait_ns = std::min(wait_ns, std::max<std::int64_t>(rest_ns, 1'000'000));
            }
            __kernel_timespec timeout{.tv_sec = 0, .tv_nsec = wait_ns};
            io_uring_cqe* first = nullptr;
            const int rc = io_uring_submit_and_wait_timeout(ring_.get(), &first,
                                                            busy ? wait_batch_ : 1, &timeout,
                                                            nullptr);
            if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY)
                CEFD_LOG_EVERY(10, error, "receive: %s io_uring wait failed: %s", intake_.name.c_str(),
                               std::strerror(-rc));
            now_ns_ = wall_clock_ns();
            monotonic_now_ns_ = monotonic_ns();
            table_.set_clock(now_ns_, monotonic_now_ns_);
            tls_ready_ = false;
            last_pass = drain_completions();
            intake_.flush(batch_, udp_fd());
            if (udp_rearm_) arm_udp();
            if (accept_rearm_ && !accept_backoff_.resting(monotonic_now_ns_)) arm_accept();
            if (tls_rearm_) arm_tls();
            (void)serve_streams(intake_, table_, tls_.get(), tls_ready_);
        }
        quiesce();
        take_backlog_at_stop(tcp_fd_, table_, *this, intake_.stats);
        if (tls_ != nullptr) tls_->stop_listening();
        // A multishot receive the kernel did not give back would race the drain's own reads.
        drain_at_stop(intake_, table_, udp_armed() ? -1 : udp_fd());
        // Counted up to here: from now on senders get a port unreachable. (A request the kernel
        // did not give back holds the socket open until the ring goes.)
        udp_fd_.reset();
    }

private:
    // Stop: every request still in the kernel is cancelled and its completion handled (datagrams
    // and bytes that completed first are delivered), so that drain_at_stop may read the sockets
    // itself and no buffer is the kernel's any more. Bounded: a second at most.
    void quiesce() {
        stopping_ = true;
        auto cancel = [&](void* user_data) {
            io_uring_sqe* sqe = ring_.sqe();
            io_uring_prep_cancel(sqe, user_data, 0);
            io_uring_sqe_set_data(sqe, nullptr);  // the cancel's own completion: ignored
        };
        if (udp_armed()) cancel(&udp_completion_);
        if (accept_armed()) cancel(&listener_completion_);
        if (tls_armed()) cancel(&tls_completion_);
        table_.for_each([&](Connection& connection) {
            if (connection.in_flight && !connection.closing) cancel(connection.completion());
        });
        const std::int64_t give_up = monotonic_ns() + 1'000'000'000;
        while (udp_armed() || accept_armed() || tls_armed() || table_.any_in_flight()) {
            if (monotonic_ns() >= give_up) {
                CEFD_LOG(error, "receive: %s io_uring requests not cancelled within 1 s of the stop",
                         intake_.name.c_str());
                break;
            }
            __kernel_timespec timeout{.tv_sec = 0, .tv_nsec = 10'000'000};
            io_uring_cqe* first = nullptr;
            (void)io_uring_submit_and_wait_timeout(ring_.get(), &first, 1, &timeout, nullptr);
            now_ns_ = wall_clock_ns();
            monotonic_now_ns_ = monotonic_ns();
            table_.set_clock(now_ns_, monotonic_now_ns_);
            drain_completions();
            intake_.flush(batch_, udp_fd());
            table_.end_pass();
        }
    }
    [[nodiscard]] bool udp_armed() const noexcept { return udp_fd_.valid() && !udp_rearm_; }
    [[nodiscard]] bool accept_armed() const noexcept { return tcp_fd_.valid() && !accept_rearm_; }
    [[nodiscard]] bool tls_armed() const noexcept { return tls_ != nullptr && !tls_rearm_; }

    void arm_udp() {
        io_uring_sqe* sqe = ring_.sqe();
        io_uring_prep_recvmsg_multishot(sqe, udp_fd_.get(), &udp_msg_, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = buffer_group;
        io_uring_sqe_set_data(sqe, &udp_completion_);
        udp_rearm_ = false;
    }

    void arm_accept() {
        io_uring_sqe* sqe = ring_.sqe();
        io_uring_prep_multishot_accept(sqe, tcp_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
        io_uring_sqe_set_data(sqe, &listener_completion_);
        accept_rearm_ = false;
    }

    void arm_tls() {
        io_uring_sqe* sqe = ring_.sqe();
        io_uring_prep_poll_multishot(sqe, tls_->fd(), POLLIN);
        io_uring_sqe_set_data(sqe, &tls_completion_);
        tls_rearm_ = false;
    }

    void arm_recv(Connection& connection) {
        io_uring_sqe* sqe = ring_.sqe();
        io_uring_prep_recv(sqe, connection.fd.get(), connection.read_at(), connection.room(), 0);
        io_uring_sqe_set_data(sqe, connection.completion());
        connection.in_flight = true;
    }

    // ConnectionDriver.
    void resume_reads(Connection& connection) override {
        if (!stopping_) arm_recv(connection);  // stopping: drain_at_stop reads it
    }
    void pause_reads(Connection&) override {}  // no recv is armed until resume_reads
    bool cancel_reads(Connection& connection) override {
        if (!connection.in_flight) return false;
        io_uring_sqe* sqe = ring_.sqe();
        io_uring_prep_cancel(sqe, connection.completion(), 0);
        // prep_cancel leaves user_data as the slot's last user left it: clear it, so the
        // cancel's own completion is not taken for some earlier request's.
        io_uring_sqe_set_data(sqe, nullptr);
        return true;  // on_recv sees `closing` and hands the completion to the table
    }
    void on_close(Connection& connection) override {
        // The kernel must be done with the buffer before the table frees it.
        CEFD_ASSERT(!connection.in_flight);
        bump(intake_.stats.tcp_closed);
    }

    unsigned drain_completions() {
        io_uring_cqe* cqe = nullptr;
        unsigned head = 0;
        unsigned seen = 0;
        io_uring_for_each_cqe(ring_.get(), head, cqe) {
            auto* completion = static_cast<Completion*>(io_uring_cqe_get_data(cqe));
            if (completion != nullptr) {
                switch (completion->kind) {
                    case Completion::Kind::udp: on_udp(*cqe); break;
                    case Completion::Kind::listener: on_accept(*cqe); break;
                    case Completion::Kind::connection:
                        on_recv(static_cast<Connection&>(*completion), cqe->res);
                        break;
                    case Completion::Kind::tls:
                        if ((cqe->flags & IORING_CQE_F_MORE) == 0) tls_rearm_ = true;
                        tls_ready_ = true;
                        break;
                }
            }  // else: the completion of a cancel request; nothing to do
            if (++seen == cqes_per_pass_max) break;
        }
        io_uring_cq_advance(ring_.get(), seen);
        buffers_.publish();
        return seen;
    }

    void on_udp(const io_uring_cqe& cqe) {
        if ((cqe.flags & IORING_CQE_F_MORE) == 0) udp_rearm_ = true;
        if (cqe.res < 0) {
            if (stopping_ && (cqe.res == -ECANCELED || cqe.res == -EINTR)) return;
            if (cqe.res == -ENOBUFS) {
                // Every provided buffer was in use: the kernel kept the datagrams in the socket
                // buffer (or dropped them, which udp_socket_drops counts). Re-armed this pass.
                bump(intake_.stats.no_buffers);
            } else {
                CEFD_LOG_EVERY(10, error, "receive: %s UDP recvmsg failed: %s", intake_.name.c_str(),
                               std::strerror(-cqe.res));
            }
            return;
        }
        if ((cqe.flags & IORING_CQE_F_BUFFER) == 0) return;
        const auto id = static_cast<std::uint32_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
        std::byte* buffer = buffers_.buffer(id);
        io_uring_recvmsg_out* out = io_uring_recvmsg_validate(buffer, cqe.res, &udp_msg_);
        if (out != nullptr) {
            const auto* payload = static_cast<const char*>(io_uring_recvmsg_payload(out, &udp_msg_));
            const auto length = io_uring_recvmsg_payload_length(out, cqe.res, &udp_msg_);
            const bool truncated = (out->flags & MSG_TRUNC) != 0;
            const auto* peer = out->namelen != 0
                                   ? static_cast<const sockaddr*>(io_uring_recvmsg_name(out))
                                   : nullptr;
            intake_.on_datagram(peer, std::string_view(payload, length), truncated, now_ns_, batch_);
        } else {
            // Shorter than the header the kernel writes: no datagram can be read from it. Never
            // seen; counted so that it could not hide.
            bump(intake_.stats.bad_completions);
        }
        buffers_.give_back(id);
    }

    void on_accept(const io_uring_cqe& cqe) {
        if ((cqe.flags & IORING_CQE_F_MORE) == 0) accept_rearm_ = true;
        if (cqe.res < 0) {
            if (accept_backoff_.on_error(-cqe.res, monotonic_now_ns_, intake_.lane, "TCP",
                                         intake_.stats) &&
                (cqe.flags & IORING_CQE_F_MORE) != 0) {
                // The accept is still armed and would fail again at once: stop it; arm_accept
                // starts a new one when the backoff ends.
                io_uring_sqe* sqe = ring_.sqe();
                io_uring_prep_cancel(sqe, &listener_completion_, 0);
                io_uring_sqe_set_data(sqe, nullptr);
            }
            return;
        }
        UniqueFd fd{cqe.res};
        sockaddr_storage peer{};
        socklen_t peer_length = sizeof peer;
        const sockaddr* peer_address = reinterpret_cast<const sockaddr*>(&peer);
        if (::getpeername(fd.get(), reinterpret_cast<sockaddr*>(&peer), &peer_length) != 0)
            peer_address = nullptr;
        Connection* connection = table_.accept(
            std::move(fd), SourceAddress::from_sockaddr(peer_address), Transport::tcp, *this);
        if (connection == nullptr) return;  // refused, counted
        bump(intake_.stats.tcp_accepted);
        if (!stopping_) arm_recv(*connection);  // stopping: drain_at_stop reads it
    }

    void on_recv(Connection& connection, int res) {
        connection.in_flight = false;
        if (connection.closing) {
            // cancel_reads() cancelled this recv to close the connection. Bytes that raced in
            // first are kept: the table delivers everything, then closes.
            table_.on_cancelled(connection, res > 0 ? static_cast<std::size_t>(res) : 0);
            return;
        }
        if (res > 0) {
            table_.on_read(connection, static_cast<std::size_t>(res));
        } else if (res == 0 || res == -ECONNRESET || res == -ETIMEDOUT || res == -EPIPE) {
            connection.eof = true;  // closed or reset by the peer: deliver what is left
        } else if (stopping_ && (res == -ECANCELED || res == -EINTR)) {
            // quiesce() took the read back: drain_at_stop reads what is there.
        } else {
            CEFD_LOG_EVERY(10, warn, "receive: lane %u TCP recv from %s failed: %s", intake_.lane,
                           connection.source.to_string().c_str(), std::strerror(-res));
            connection.eof = true;
        }
        if (table_.process(connection) == ConnectionTable::Next::read && !stopping_) arm_recv(connection);
    }

    Intake intake_;
    // The connections' buffers are the kernel's while a recv is in flight: the table outlives
    // the ring (declared last, destroyed first, which cancels every request).
    ConnectionTable table_;
    std::unique_ptr<TlsServer> tls_;  // null unless tls_cert_file is set
    const unsigned wait_batch_ = wait_batch_for(intake_.config.buffers_per_core);
    UniqueFd udp_fd_;
    UniqueFd tcp_fd_;
    Completion udp_completion_{Completion::Kind::udp};
    Completion listener_completion_{Completion::Kind::listener};
    Completion tls_completion_{Completion::Kind::tls};
    msghdr udp_msg_ = recvmsg_template();
    BufferRing buffers_;
    UdpBatch batch_;
    AcceptBackoff accept_backoff_;
    std::int64_t now_ns_ = 0;
    std::int64_t monotonic_now_ns_ = 0;
    bool udp_rearm_ = false;
    bool accept_rearm_ = false;
    bool tls_rearm_ = false;
    bool tls_ready_ = false;  // the TLS epoll set signalled this pass
    bool stopping_ = false;   // quiesce(): nothing is armed again
    // Last, so it is destroyed first: no request may outlive the memory it points into.
    Ring ring_;
};

}  // namespace

Result<std::unique_ptr<Engine>> open_uring_engine(const ReceiveConfig& config, unsigned lane, unsigned lanes,
                                                  ByteRing& ring, ReceiveStats& stats,
                                                  std::atomic<bool>& reload_requested) {
    return open_engine<UringEngine>(config, lane, lanes, ring, stats, reload_requested);
}

const Status& probe_uring() {
    static const Status result = []() -> Status {
        BufferRing buffers;  // declared first: it must outlive the ring it is registered with
        Ring ring;
        if (const int rc = ring.init(8, 16); rc < 0)
            return Error{Errc::uring_unavailable, -rc, uring_reason(-rc)};
        io_uring_probe* probe = io_uring_get_probe_ring(ring.get());
        if (probe == nullptr)
            return Error{Errc::uring_unavailable, "io_uring opcode probe failed (kernel < 5.6)"};
        const bool opcodes = io_uring_opcode_supported(probe, IORING_OP_RECVMSG) &&
                             io_uring_opcode_supported(probe, IORING_OP_ACCEPT) &&
                             io_uring_opcode_supported(probe, IORING_OP_RECV) &&
                             io_uring_opcode_supported(probe, IORING_OP_ASYNC_CANCEL);
        io_uring_free_probe(probe);
        if (!opcodes)
            return Error{Errc::uring_unavailable,
                         "io_uring lacks RECVMSG/ACCEPT/RECV/ASYNC_CANCEL (kernel too old)"};
        if (const int rc = buffers.init(ring.get(), 2, header_bytes + 64); rc != 0)
            return Error{Errc::uring_unavailable, -rc,
                         "io_uring provided-buffer rings unsupported (kernel older than 5.19)"};
        if (const int rc = ring.enable(); rc < 0)
            return Error{Errc::uring_unavailable, -rc, "io_uring ring could not be enabled"};
        // Multishot is a flag, not an opcode, so the probe above cannot see it: try one.
        auto address = ListenAddress::parse("127.0.0.1", 0);
        auto fd = open_udp_socket(address.value(), 65'536, "probe");
        if (!fd) return Error{Errc::uring_unavailable, fd.error().describe()};
        sockaddr_storage bound{};
        socklen_t bound_length = sizeof bound;
        ::getsockname(fd->get(), reinterpret_cast<sockaddr*>(&bound), &bound_length);
        msghdr msg = recvmsg_template();
        io_uring_sqe* sqe = ring.sqe();
        io_uring_prep_recvmsg_multishot(sqe, fd->get(), &msg, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = buffer_group;
        io_uring_submit(ring.get());
        const char byte = 'x';
        ::sendto(fd->get(), &byte, 1, 0, reinterpret_cast<const sockaddr*>(&bound), bound_length);
        io_uring_cqe* cqe = nullptr;
        __kernel_timespec timeout{.tv_sec = 1, .tv_nsec = 0};
        if (io_uring_wait_cqe_timeout(ring.get(), &cqe, &timeout) != 0 || cqe == nullptr)
            return Error{Errc::uring_unavailable, "multishot recvmsg probe got no completion"};
        const bool works = cqe->res > 0 && (cqe->flags & IORING_CQE_F_MORE) != 0 &&
                           (cqe->flags & IORING_CQE_F_BUFFER) != 0;
        const int res = cqe->res;
        io_uring_cqe_seen(ring.get(), cqe);
        if (!works)
            return Error{Errc::uring_unavailable, res < 0 ? -res : 0,
                         "multishot recvmsg unsupported (kernel older than 6.0)"};
        return ok_status();
    }();
    return result;
}

}  // namespace cefd::receive
