// tools/loadgen/sender.h: the sending half of cefd-loadgen.
//
// `senders` threads, each with its share of `flows` sockets (connected UDP, TCP, or TLS over
// TCP); a sender rotates its bursts over its flows, so UDP reaches many SO_REUSEPORT lanes. Sequence numbers
// are handed out in blocks from one shared counter, so the events sent are always numbered
// 0 .. attempted-1 with no gaps, whatever mix of count, duration and senders ends the run.
// Each thread paces itself with a token bucket (rate/senders, or the --ramp rate at this moment)
// on the monotonic nanosecond clock
// and sends in bursts: sendmmsg for UDP, one large send() of many frames for TCP.
//
// Stamping: the line's trailing whitespace is removed and " cefdseq=<run-id>-<n>" appended, so
// the event lands in the row's AdditionalExtensions where verify.h finds it. With stamp_time,
// " cefdts=<unix µs>" follows: the send time, read once per burst.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "tools/loadgen/options.h"

namespace cefd::loadgen {

struct SendReport {
    std::uint64_t attempted = 0;    // sequence numbers used: 0 .. attempted-1
    std::uint64_t sent = 0;         // handed to the kernel
    std::uint64_t send_errors = 0;  // attempted but not sent (counted as lost by verify)
    double elapsed_s = 0;
    double cpu_s = 0;               // this process's user + system CPU while sending
    double sender_cpu_s = 0;        // the sender threads' own CPU (RUSAGE_THREAD), summed
    double sender_run_delay_s = 0;  // their time runnable but waiting for a CPU (schedstat), summed
    double send_wait_s = 0;         // TCP/TLS: wall time inside send()/SSL_write, summed
    std::uint32_t sender_threads = 0;
    double requested_events = 0;    // what --rate / --ramp asked for over elapsed_s (0: flat out)
    std::string error;              // a connection that could not be made, etc.
};

/// Whether a run's rate was set by the generator rather than by the target, so that no verdict
/// is taken from it. Limited when the generator offered less than 97% of the rate asked for
/// (unless TCP/TLS sends were blocked at least half the time: that is the target's
/// backpressure, reported as such), or when its sender threads were CPU-bound (at least 90% of
/// a core each; flat-out UDP always is, which is the point: the target could have taken more),
/// or starved: runnable (on a CPU or waiting for one) at least 90% of the time, as flat-out UDP
/// is on a machine whose cores the target and others keep busy.
struct GeneratorCheck {
    bool limited = false;
    bool target_backpressure = false;
    double offered_eps = 0;
    double requested_eps = 0;     // 0: flat out
    double sender_cpu_share = 0;  // sender CPU over (threads x elapsed): 1 = every thread CPU-bound
    double sender_runnable_share = 0;  // (sender CPU + run-queue wait) over (threads x elapsed)
    std::string why;              // empty when not limited
};

/// The fraction of the requested rate a run must reach, and of a core each sender thread may
/// use (or of the time it may be runnable), before the run counts as generator-limited.
constexpr double offered_fraction_min = 0.97;
constexpr double sender_cpu_share_max = 0.90;

GeneratorCheck check_generator(const SendReport& report);

/// Sets up a sending socket of `family` (run's and replay's alike): a 4 MiB send buffer, so bursts
/// queue instead of blocking (capped by wmem_max); and for UDP, IP_RECVERR, so that the kernel
/// reports a datagram its device queue drops (ENOBUFS from send, which the senders wait out)
/// instead of counting it in Udp SndbufErrors and reporting it sent. Without that, a remote
/// generator's own loss reads as the target's.
void prepare_send_socket(int fd, int family, bool udp);

/// After a UDP send that failed with `error`: true when trying again may succeed, which for a full
/// device or socket queue (ENOBUFS, EAGAIN) is after a 50 µs wait; false for any other error.
/// Callers bound their retries (10,000: about 0.5 s of a full queue).
bool wait_to_retry_udp_send(int error);

/// Sends until count or duration runs out. `progress` is bumped as events go out (for the
/// --report-interval-s line); the call blocks until every sender thread is done.
SendReport send_events(const LoadgenOptions& options, const std::vector<std::string>& lines,
                       std::atomic<std::uint64_t>& progress);

}  // namespace cefd::loadgen
