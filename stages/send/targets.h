// stages/send/targets.h: the ingestion targets ([azure] and [[azure.targets]]) and how the
// sender picks one for a new request: smooth weighted round robin by `weight` over the targets
// that can take a request now (not paused by a 429, below their own max_in_flight).
// Plain data and pure functions; the sender thread owns the vector.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stages/send/send.h"

namespace cefd {

struct Target {
    AzureTarget config;
    std::string url_common_security_log;
    std::string url_syslog;
    std::int64_t paused_until_ns = 0;  // after a 429
    std::int64_t current_weight = 0;   // smooth weighted round robin
    std::uint32_t in_flight = 0;
    std::uint32_t max_in_flight = 0;   // its own cap, or the global one
};

/// The target with its request URLs; its cap is at most `global_max_in_flight`.
Target make_target(const AzureTarget& config, std::uint32_t global_max_in_flight);

[[nodiscard]] inline bool can_take(const Target& t, std::int64_t now_ns) noexcept {
    return t.paused_until_ns <= now_ns && t.in_flight < t.max_in_flight;
}
[[nodiscard]] bool any_can_take(const std::vector<Target>& targets, std::int64_t now_ns) noexcept;
/// The next target by weight among those that can take a request; targets.size() when none.
std::size_t pick_target(std::vector<Target>& targets, std::int64_t now_ns) noexcept;
/// When the first paused target resumes; INT64_MAX when none is paused.
[[nodiscard]] std::int64_t earliest_unpause(const std::vector<Target>& targets, std::int64_t now_ns) noexcept;

}  // namespace cefd
