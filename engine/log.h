// engine/log.h: one-line, timestamped log records on stderr.
//
// Thread-safe (one write(2) per record). Levels: error, warn, info, debug. Secrets never reach
// this file: the Secret type (engine/config/secret.h) prints as ***.
// `CEFD_LOG_EVERY(seconds, level, ...)` logs at most once per interval per call site, for
// things that can happen per message or per request (drops, retries).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace cefd::log {

enum class Level : std::uint8_t { error = 0, warn = 1, info = 2, debug = 3 };

void set_level(Level level) noexcept;
Level level() noexcept;
bool parse_level(const char* text, Level& out) noexcept;

[[gnu::format(printf, 2, 3)]] void write(Level level, const char* format, ...) noexcept;

/// True at most once per `interval_ns` for the given call-site state.
bool should_log(std::atomic<std::int64_t>& last_ns, std::int64_t interval_ns) noexcept;

}  // namespace cefd::log

#define CEFD_LOG(lvl, ...)                                                           \
    do {                                                                             \
        if (::cefd::log::Level::lvl <= ::cefd::log::level())                         \
            ::cefd::log::write(::cefd::log::Level::lvl, __VA_ARGS__);                \
    } while (0)

#define CEFD_LOG_EVERY(seconds, lvl, ...)                                            \
    do {                                                                             \
        static std::atomic<std::int64_t> cefd_log_last_ns_{0};                       \
        if (::cefd::log::should_log(cefd_log_last_ns_, (seconds) * 1'000'000'000LL)) \
            CEFD_LOG(lvl, __VA_ARGS__);                                              \
    } while (0)

/// CEFD_LOG_EVERY with `slots` rate limits at one call site, `slot` (0 .. slots - 1) picking
/// one: a flood of one kind (a port scanner's garbage, one source over its cap) does not hide a
/// line of another kind for `seconds`.
#define CEFD_LOG_EVERY_PER(seconds, slots, slot, lvl, ...)                                         \
    do {                                                                                          \
        static std::array<std::atomic<std::int64_t>, (slots)> cefd_log_last_ns_{};                \
        if (::cefd::log::should_log(cefd_log_last_ns_[(slot)], (seconds) * 1'000'000'000LL))      \
            CEFD_LOG(lvl, __VA_ARGS__);                                                           \
    } while (0)

/// A bug: on in release builds. Prints the condition and location, then aborts.
#define CEFD_ASSERT(cond)                                                            \
    do {                                                                             \
        if (!(cond)) [[unlikely]]                                                    \
            ::cefd::log::assert_failed(#cond, __FILE__, __LINE__);                   \
    } while (0)

namespace cefd::log {
[[noreturn]] void assert_failed(const char* cond, const char* file, int line) noexcept;
}
