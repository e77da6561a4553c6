// stages/receive/drain.cpp: what a lane's receive thread does last (connection_table.h,
// drain_at_stop). At a stop the kernel still holds what senders were told had arrived: UDP
// datagrams queued in the socket (up to rcvbuf_bytes), TCP bytes acknowledged but unread. Both
// engines end their event loop, make sure none of their reads is still in the kernel, and then
// this reads the sockets with plain non-blocking calls and delivers into the lane ring like any
// other message, while the worker (still running) empties the ring into the spool.
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <new>

#include "engine/clock.h"
#include "engine/log.h"
#include "engine/record.h"
#include "stages/receive/connection_table.h"
#include "stages/receive/engine.h"
#include "stages/receive/socket.h"

namespace cefd::receive {
namespace {

/// The lane's UDP socket, read with recvmmsg until it is empty. Its buffers are allocated at the
/// first pass (a stop is not the hot path; a lane whose drain is off never needs them).
class UdpDrain {
public:
    UdpDrain(Intake& intake, int fd) : intake_(intake), fd_(fd) {}

    /// Reads up to calls_per_pass recvmmsg calls' worth, each only as many datagrams as the ring
    /// surely takes. True when it read some, or the ring had no room for them; false when the
    /// socket was empty (or UDP is off). A later pass looks again: datagrams go on arriving
    /// while the drain lasts.
    bool pass() noexcept {
        if (fd_ < 0 || !allocate()) return false;
        for (unsigned call = 0; call < calls_per_pass; ++call) {
            // One record's worth is kept back for the skip a record leaves at the ring's end.
            const std::size_t room = intake_.ring_room();
            const auto fit = static_cast<unsigned>(
                room > record_max_ ? std::min<std::size_t>(per_call, (room - record_max_) / record_max_) : 0);
            if (fit == 0) return true;  // the worker is behind: wait
            const int received = reader_->read(fd_, fit, wall_clock_ns(), batch_);
            if (received <= 0) {
                if (received < 0 && errno == EINTR) continue;
                if (received < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                    CEFD_LOG(error, "receive: %s recvmmsg at stop failed: %s", intake_.name.c_str(),
                             std::strerror(errno));
                return call != 0;
            }
            delivered_ += batch_.datagrams;
            intake_.flush(batch_, fd_);  // counters, and the worker is woken
        }
        return true;
    }

    /// The drain has ended: counts what the socket still holds (read and thrown away, for at
    /// most count_ns, so a sender that never pauses cannot hold the stop) and says so.
    void account() noexcept {
        if (fd_ < 0) return;
        std::uint64_t unread = 0;
        const std::int64_t give_up = monotonic_ns() + count_ns;
        char byte = 0;
        iovec tiny[per_call];
        mmsghdr messages[per_call]{};
        for (unsigned i = 0; i < per_call; ++i) {
            tiny[i] = {&byte, 1};
            messages[i].msg_hdr.msg_iov = &tiny[i];
            messages[i].msg_hdr.msg_iovlen = 1;
        }
        bool complete = false;
        while (monotonic_ns() < give_up) {
            const int received = ::recvmmsg(fd_, messages, per_call, MSG_DONTWAIT, nullptr);
            if (received < 0 && errno == EINTR) continue;
            if (received <= 0) {
                complete = true;
                break;
            }
            unread += static_cast<std::uint64_t>(received);
        }
        if (unread == 0) return;
        batch_ = {};
        batch_.kernel_drops = udp_socket_drops(fd_);  // what overflowed while the drain waited
        intake_.flush(batch_, -1);
        bump(intake_.stats.udp_unread_at_stop, unread);
        if (intake_.lane != calibration_lane)
            CEFD_LOG(warn,
                     "receive: %s stopping with %s%llu UDP datagrams still queued in its socket when "
                     "the stop's drain ended (receive.drain_timeout_ms; receive_udp_unread_at_stop_total): "
                     "not delivered",
                     intake_.name.c_str(), complete ? "" : "at least ", static_cast<unsigned long long>(unread));
    }

    [[nodiscard]] std::uint64_t delivered() const noexcept { return delivered_; }

private:
    bool allocate() noexcept {
        if (reader_ != nullptr) return true;
        if (no_memory_) return false;
        try {
            reader_ = std::make_unique<DatagramReader>(intake_);
        } catch (const std::bad_alloc&) {
            CEFD_LOG(
                error,
                "receive: %s has no memory for the stop's UDP drain: what its socket holds is counted, not delivered",
                intake_.name.c_str());
            no_memory_ = true;  // account() still counts: it needs no buffers
            return false;
        }
        record_max_ = ByteRing::footprint(message_record_bytes(intake_.datagram_limit));
        return true;
    }

    static constexpr unsigned per_call = DatagramReader::batch_max;
    static constexpr unsigned calls_per_pass = 16;
    static constexpr std::int64_t count_ns = 200'000'000;
    Intake& intake_;
    const int fd_;
    std::unique_ptr<DatagramReader> reader_;  // made at the first pass
    bool no_memory_ = false;                  // making it failed
    UdpBatch batch_;
    std::size_t record_max_ = 0;  // ring bytes the longest datagram takes
    std::uint64_t delivered_ = 0;
};

constexpr std::int64_t quiet_ns = 20'000'000;

std::uint64_t frames_delivered(const ReceiveStats& stats) noexcept {
    return read(stats.tcp_frames) + read(stats.tls_frames);
}

}  // namespace

void drain_at_stop(Intake& intake, ConnectionTable& table, int udp_fd) noexcept {
    const std::int64_t started = monotonic_ns();
    const std::int64_t deadline = started + std::int64_t{intake.config.drain_timeout_ms} * 1'000'000;
    const std::uint64_t frames_before = frames_delivered(intake.stats);
    UdpDrain udp(intake, udp_fd);
    // It ends once nothing has come for quiet_ns: a sender may still hold bytes in its own send
    // buffer, which the window our reads opened lets through only now (measured: without the
    // wait, up to 4 % of a flat-out TCP run was reset on the way, bench/README.md "Stop drain").
    std::int64_t last_busy = started;
    // drain_timeout_ms = 0: no drain, only the counting.
    for (bool draining = intake.config.drain_timeout_ms != 0; draining;) {
        table.set_clock(wall_clock_ns(), monotonic_ns());
        // Datagrams first: a full socket buffer drops, a connection only waits.
        const bool udp_busy = udp.pass();
        const bool streams_busy = table.drain_pass();
        const std::int64_t now = monotonic_ns();
        if (udp_busy || streams_busy) last_busy = now;
        draining = now - last_busy < quiet_ns && now < deadline;
        if (draining) {
            const timespec pause{.tv_sec = 0, .tv_nsec = 1'000'000};  // the worker frees ring room
            ::clock_nanosleep(CLOCK_MONOTONIC, 0, &pause, nullptr);
        }
    }
    const std::uint64_t frames = frames_delivered(intake.stats) - frames_before;
    const std::uint64_t drained = udp.delivered() + frames;
    if (drained != 0) {
        bump(intake.stats.drained_at_stop, drained);
        if (intake.lane != calibration_lane)
            CEFD_LOG(
                info,
                "receive: %s read %llu datagrams and %llu TCP/TLS frames its sockets still held at stop, in %lld ms",
                intake.name.c_str(), static_cast<unsigned long long>(udp.delivered()),
                static_cast<unsigned long long>(frames),
                static_cast<long long>((monotonic_ns() - started) / 1'000'000));
    }
    // Connections first: while the datagrams are counted (up to 0.2 s) they would go on taking
    // bytes in.
    table.account_at_stop();
    table.close_all_at_stop();
    udp.account();
}

}  // namespace cefd::receive
