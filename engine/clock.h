// engine/clock.h: the two clocks cefd uses. Wall time stamps rows (TimeGenerated); monotonic
// time drives every timeout, linger and backoff, so that a clock step cannot stall delivery.
#pragma once

#include <cstdint>
#include <ctime>

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

}  // namespace cefd
