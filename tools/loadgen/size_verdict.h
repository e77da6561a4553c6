// tools/loadgen/size_verdict.h: the recommendation arithmetic of `cefd-loadgen size`: the
// verdict is the highest rate that held for the full --hold-s (the rate that trial offered, when
// the generator offered a little less than its target); with --peak-eps P and --headroom H,
// collectors = ceil(P / (verdict * (1 - H))) and DCRs from Azure's per-DCR limits with the
// measured JSON bytes per row and rows per request. A generator-limited trial never holds, so
// never gives the verdict; when the first rate above the verdict failed only for the generator,
// the verdict says so (generator_limited, why).
#pragma once

#include <string>
#include <vector>

#include "tools/loadgen/size_options.h"
#include "tools/loadgen/size_trial.h"

namespace cefd::loadgen::sizing {

struct Verdict {
    bool reached = false;  // false: cefd stopped answering during the search (no verdict)
    bool target_unreachable = false;
    double max_zero_loss_eps = 0;
    bool at_max_rate = false;  // every rate up to --max-rate held: the verdict is a lower bound
    const Trial* best = nullptr;
    // The rate above the verdict that did not hold failed only because the generator could not
    // offer it (check_generator): cefd was not shown to fail, so the verdict is a lower bound.
    // Also set when no rate held and the lowest one failed for the generator.
    bool generator_limited = false;
    double generator_limited_eps = 0;  // that trial's target rate
    std::string why;                   // that trial's check_generator why; empty when not limited
    double cpu_us_per_event = 0;
    double p99_ms = 0;
    double peak_rss_mib = 0;
    double json_bytes_per_row = 0;
    double rows_per_request = 0;
    // --peak-eps
    double capacity_per_collector = 0;
    int collectors_needed = 0;
    double dcr_bytes_per_min = 0;
    double dcr_requests_per_min = 0;
    int dcrs_by_bytes = 0;
    int dcrs_by_requests = 0;
    int dcrs_needed = 0;
};

constexpr double dcr_bytes_per_min_limit = 2e9;  // "2 GB/min", read as 10^9 bytes (the lower reading)
constexpr double dcr_requests_per_min_limit = 12'000;

/// The verdict over `trials` (it points into them: keep them alive while it is used).
Verdict decide(const SizeOptions& options, const std::vector<Trial>& trials);

}  // namespace cefd::loadgen::sizing
