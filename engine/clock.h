// engine/clock.h: the two clocks cefd uses. Wall time stamps rows (TimeGenerated); monotonic
// time drives every timeout, linger and backoff, so that a clock step cannot stall delivery.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>

namespace cefd {

inline std::int64_t wall_clock_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline std::int64_t monotonic_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// `seconds` since the epoch as "YYYY-MM-DDTHH:MM:SSZ" (UTC), to the second: how cefd writes a
/// time a person or Azure reads outside the rows (check, dead letters, remembered measurements).
inline std::string utc_iso8601(std::time_t seconds) {
    std::tm tm{};
    ::gmtime_r(&seconds, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
}

}  // namespace cefd
