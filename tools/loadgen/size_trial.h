// tools/loadgen/size_trial.h: one sizing trial (offer a rate for a while and judge it) and the
// search over trials: a doubling ramp of short trials, then full-length trials bisecting between
// the last rate that held and the first that failed (size.h has the rules).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tools/loadgen/size_options.h"

namespace cefd::loadgen::sizing {

struct Trial {
    double target_eps = 0;
    double hold_s = 0;
    std::string phase;  // "ramp", "bisect"
    std::uint64_t sent = 0;
    double offered_eps = 0;
    std::uint64_t delivered = 0;
    std::uint64_t lost = 0;
    std::uint64_t duplicated = 0;
    double delivered_eps = 0;
    double loss_pct = 0;
    double p50_ms = 0;
    double p99_ms = 0;
    double max_ms = 0;
    double cefd_cpu_us_per_event = 0;
    double loadgen_cpu_us_per_event = 0;
    double backlog_start = 0;  // ring bytes / 64 KiB + spool batches, a third of the way in
    double backlog_end = 0;
    double peak_rss_mib = 0;
    double json_bytes_per_row = 0;
    double rows_per_request = 0;
    // cefd's /metrics stopped answering or its process went away during the trial: nothing after
    // this is about cefd's capacity, so the search stops and there is no verdict.
    bool target_unreachable = false;
    // check_generator (sender.h), the same check as the run report's: a generator-limited trial
    // never holds, so no verdict is taken from it.
    double requested_eps = 0;
    double sender_cpu_share = 0;
    double sender_runnable_share = 0;
    bool generator_limited = false;
    bool target_backpressure = false;  // TCP/TLS sends blocked: cefd did not take the rate
    std::string generator_why;         // check_generator's why (empty when not limited)
    bool held = false;
    std::string why;  // the first reason it did not hold
};

/// The start of a trial's why when only the generator kept it from holding.
inline constexpr std::string_view generator_limited_why_prefix = "generator limited: ";
inline constexpr std::string_view target_unreachable_why =
    "target unreachable (cefd's /metrics stopped answering or its process ended)";

/// Why a trial did not hold (empty: it held). The first reason wins, in the operator's order:
/// loss, backlog growing, no latency, p99 over bound, target backpressure, then the generator.
/// `latency_samples` is the verify report's; the generator fields must be filled in.
std::string judge(const Trial& trial, std::uint64_t latency_samples, double max_p99_ms);

/// Ramp, then confirm and bisect with full-length trials, against the cefd whose process is `pid`.
std::vector<Trial> search(const SizeOptions& options, const std::vector<std::string>& lines, int pid);

}  // namespace cefd::loadgen::sizing
