// stages/send/targets.cpp: target URLs and weighted selection (see targets.h).
#include "stages/send/targets.h"

#include <algorithm>
#include <climits>

namespace cefd {

Target make_target(const AzureTarget& t, std::uint32_t global_max_in_flight) {
    Target target;
    target.config = t;
    std::string base = t.endpoint;
    while (!base.empty() && base.back() == '/') base.pop_back();
    base += "/dataCollectionRules/" + t.dcr_id + "/streams/";
    target.url_common_security_log = base + t.stream + "?api-version=2023-01-01";
    target.url_syslog = base + t.syslog_stream + "?api-version=2023-01-01";
    target.max_in_flight = t.max_in_flight == 0 ? global_max_in_flight : std::min(t.max_in_flight, global_max_in_flight);
    return target;
}

bool any_can_take(const std::vector<Target>& targets, std::int64_t now_ns) noexcept {
    return std::any_of(targets.begin(), targets.end(), [now_ns](const Target& t) { return can_take(t, now_ns); });
}

std::size_t pick_target(std::vector<Target>& targets, std::int64_t now_ns) noexcept {
    std::int64_t total = 0;
    std::size_t best = targets.size();
    for (std::size_t i = 0; i < targets.size(); ++i) {
        Target& t = targets[i];
        if (!can_take(t, now_ns)) continue;
        t.current_weight += t.config.weight;
        total += t.config.weight;
        if (best == targets.size() || t.current_weight > targets[best].current_weight) best = i;
    }
    if (best < targets.size()) targets[best].current_weight -= total;
    return best;
}

std::int64_t earliest_unpause(const std::vector<Target>& targets, std::int64_t now_ns) noexcept {
    std::int64_t t = INT64_MAX;
    for (const auto& target : targets)
        if (target.paused_until_ns > now_ns) t = std::min(t, target.paused_until_ns);
    return t;
}

}  // namespace cefd
