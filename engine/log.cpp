#include "engine/log.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <unistd.h>

#include "engine/clock.h"

namespace cefd::log {
namespace {
std::atomic<Level> g_level{Level::info};
constexpr const char* level_names[] = {"error", "warn", "info", "debug"};
}  // namespace

void set_level(Level level) noexcept { g_level.store(level, std::memory_order_relaxed); }
Level level() noexcept { return g_level.load(std::memory_order_relaxed); }

bool parse_level(const char* text, Level& out) noexcept {
    for (int i = 0; i < 4; ++i) {
        if (std::strcmp(text, level_names[i]) == 0) {
            out = static_cast<Level>(i);
            return true;
        }
    }
    return false;
}

void write(Level level, const char* format, ...) noexcept {
    char line[2048];
    const std::int64_t now = wall_clock_ns();
    const std::time_t secs = static_cast<std::time_t>(now / 1'000'000'000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    int n = std::snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s ",
                          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                          tm.tm_sec, static_cast<int>((now / 1'000'000) % 1000),
                          level_names[static_cast<int>(level)]);
    va_list args;
    va_start(args, format);
    const int m = std::vsnprintf(line + n, sizeof line - static_cast<std::size_t>(n) - 1, format, args);
    va_end(args);
    n += (m < 0) ? 0 : std::min<int>(m, static_cast<int>(sizeof line) - n - 2);
    line[n++] = '\n';
    // One write(2) per record, so lines from different threads never interleave.
    [[maybe_unused]] const auto written = ::write(STDERR_FILENO, line, static_cast<std::size_t>(n));
}

bool should_log(std::atomic<std::int64_t>& last_ns, std::int64_t interval_ns) noexcept {
    const std::int64_t now = monotonic_ns();
    std::int64_t last = last_ns.load(std::memory_order_relaxed);
    if (last != 0 && now - last < interval_ns) return false;
    return last_ns.compare_exchange_strong(last, now, std::memory_order_relaxed);
}

void assert_failed(const char* cond, const char* file, int line) noexcept {
    write(Level::error, "assertion failed: %s at %s:%d", cond, file, line);
    std::abort();
}

}  // namespace cefd::log
