// engine/metrics/metrics.h: counters and the registry the Prometheus exporter reads.
//
// Counters live inside the stage that owns them (a stage's *Stats struct), one writer each
// (the stage's thread). bump() is a relaxed load + store, not a locked add, because there is
// exactly one writer; readers (the exporter) only ever load. Counters shared by several writer
// threads use add() (a real atomic add) and say so.
//
// The registry is filled at start-up while the pipeline is built and read by the exporter
// thread; registration after start() is allowed but takes a lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace cefd {

using Counter = std::atomic<std::uint64_t>;

/// Single-writer increment (see the header comment).
inline void bump(Counter& counter, std::uint64_t n = 1) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
/// Multi-writer increment.
inline void add(Counter& counter, std::uint64_t n = 1) noexcept {
    counter.fetch_add(n, std::memory_order_relaxed);
}
inline std::uint64_t read(const Counter& counter) noexcept {
    return counter.load(std::memory_order_relaxed);
}

class MetricsRegistry {
public:
    enum class Kind : std::uint8_t { counter, gauge };

    /// `name` without the cefd_ prefix; `labels` like `lane="0",reason="oversize"` or empty.
    void add(std::string_view name, std::string_view help, std::string labels,
             const Counter* value, Kind kind = Kind::counter);
    /// A gauge computed when scraped (queue depth, spool bytes). Not for hot paths.
    void add_gauge(std::string_view name, std::string_view help, std::string labels,
                   std::function<double()> value);

    /// Prometheus text exposition format 0.0.4, one HELP/TYPE block per name.
    [[nodiscard]] std::string render() const;
    /// The current value of `name{labels}`, summed over all matching series when labels is
    /// empty. For tests and the shutdown summary.
    [[nodiscard]] double value(std::string_view name, std::string_view labels = {}) const;

private:
    struct Series {
        std::string name;
        std::string help;
        std::string labels;
        Kind kind;
        const Counter* counter;
        std::function<double()> gauge;
    };
    mutable std::mutex mutex_;
    std::vector<Series> series_;
};

}  // namespace cefd
