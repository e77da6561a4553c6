// tools/loadgen/size_verdict.cpp: the verdict and the collector/DCR arithmetic (size_verdict.h).
#include "tools/loadgen/size_verdict.h"

#include <algorithm>
#include <cmath>
#include <string_view>

namespace cefd::loadgen::sizing {

Verdict decide(const SizeOptions& options, const std::vector<Trial>& trials) {
    Verdict verdict;
    for (const Trial& trial : trials) {
        // Only full-length trials count for the verdict; ramp steps are shorter than --hold-s.
        if (!trial.held || trial.hold_s < options.hold_s) continue;
        if (verdict.best == nullptr || trial.target_eps > verdict.best->target_eps) verdict.best = &trial;
    }
    // A target that died or stopped answering mid-search leaves no verdict: what held before may
    // have been the start of the collapse, and what failed after says nothing about capacity.
    verdict.target_unreachable =
        std::any_of(trials.begin(), trials.end(), [](const Trial& t) { return t.target_unreachable; });
    verdict.reached = !verdict.target_unreachable;
    if (!verdict.reached) return verdict;
    if (verdict.best != nullptr) {
        // What the trial showed to hold: its target, or less when the generator offered less (a
        // trial may hold at 97% of its target, check_generator).
        const double offered = verdict.best->offered_eps;
        verdict.max_zero_loss_eps = offered > 0 ? std::min(verdict.best->target_eps, offered) : verdict.best->target_eps;
        verdict.at_max_rate = verdict.best->target_eps >= options.max_rate;
        verdict.cpu_us_per_event = verdict.best->cefd_cpu_us_per_event;
        verdict.p99_ms = verdict.best->p99_ms;
        verdict.json_bytes_per_row = verdict.best->json_bytes_per_row;
        verdict.rows_per_request = verdict.best->rows_per_request;
    }
    // What bounded the verdict: the lowest rate above it that did not hold. If every trial there
    // failed only because of the generator, the generator, not cefd, was the limit.
    const double floor_eps = verdict.best != nullptr ? verdict.best->target_eps : 0;
    double bound_eps = 0;
    for (const Trial& trial : trials) {
        if (!trial.held && trial.target_eps > floor_eps && (bound_eps == 0 || trial.target_eps < bound_eps)) {
            bound_eps = trial.target_eps;
        }
    }
    if (bound_eps > 0) {
        verdict.generator_limited = true;
        for (const Trial& trial : trials) {
            if (trial.held || trial.target_eps != bound_eps) continue;
            const bool generator_only =
                trial.generator_limited && std::string_view(trial.why).starts_with(generator_limited_why_prefix);
            if (!generator_only) verdict.generator_limited = false;
            else if (verdict.why.empty()) verdict.why = trial.generator_why;
        }
        if (verdict.generator_limited) verdict.generator_limited_eps = bound_eps;
        else verdict.why.clear();
    }
    for (const Trial& trial : trials) verdict.peak_rss_mib = std::max(verdict.peak_rss_mib, trial.peak_rss_mib);
    if (options.peak_eps > 0 && verdict.max_zero_loss_eps > 0) {
        verdict.capacity_per_collector = verdict.max_zero_loss_eps * (1 - options.headroom);
        verdict.collectors_needed = static_cast<int>(std::ceil(options.peak_eps / verdict.capacity_per_collector));
        verdict.dcr_bytes_per_min = options.peak_eps * verdict.json_bytes_per_row * 60;
        verdict.dcr_requests_per_min =
            verdict.rows_per_request > 0 ? options.peak_eps / verdict.rows_per_request * 60 : 0;
        verdict.dcrs_by_bytes = static_cast<int>(std::ceil(verdict.dcr_bytes_per_min / dcr_bytes_per_min_limit));
        verdict.dcrs_by_requests =
            static_cast<int>(std::ceil(verdict.dcr_requests_per_min / dcr_requests_per_min_limit));
        verdict.dcrs_needed = std::max({1, verdict.dcrs_by_bytes, verdict.dcrs_by_requests});
    }
    return verdict;
}

}  // namespace cefd::loadgen::sizing
