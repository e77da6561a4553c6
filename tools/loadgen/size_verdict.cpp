// tools/loadgen/size_verdict.cpp: the verdict and the collector/DCR arithmetic (size_verdict.h).
#include "tools/loadgen/size_verdict.h"

#include <algorithm>
#include <cmath>

namespace cefd::loadgen::sizing {

Verdict decide(const SizeOptions& options, const std::vector<Trial>& trials) {
    Verdict verdict;
    for (const Trial& trial : trials) {
        // Only full-length trials count for the verdict; ramp steps are shorter than --hold-s.
        if (!trial.held || trial.hold_s < options.hold_s) continue;
        if (verdict.best == nullptr || trial.target_eps > verdict.best->target_eps) verdict.best = &trial;
    }
    verdict.reached = true;
    if (verdict.best != nullptr) {
        verdict.max_zero_loss_eps = verdict.best->target_eps;
        verdict.at_max_rate = verdict.best->target_eps >= options.max_rate;
        verdict.cpu_us_per_event = verdict.best->cefd_cpu_us_per_event;
        verdict.p99_ms = verdict.best->p99_ms;
        verdict.json_bytes_per_row = verdict.best->json_bytes_per_row;
        verdict.rows_per_request = verdict.best->rows_per_request;
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
