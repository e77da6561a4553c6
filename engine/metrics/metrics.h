// engine/metrics/metrics.h: counters, histograms and the registry the Prometheus exporter reads.
//
// Counters live inside the stage that owns them (a stage's *Stats struct), one writer each
// (the stage's thread). bump() is a relaxed load + store, not a locked add, because there is
// exactly one writer; readers (the exporter) only ever load. Counters shared by several writer
// threads use add() (a real atomic add) and say so.
//
// Names follow the Prometheus conventions, and the registry enforces the checkable ones with
// CEFD_ASSERT at registration (a bad name is a bug, found by the first start or test):
//   - a counter family ends in `_total`; a gauge or histogram family does not;
//   - every series of one family has the same HELP and TYPE;
//   - units are base units and come last (`_bytes`, `_seconds`); reasons and lanes are labels
//     (`cefd_batch_dropped_rows_total{lane="0",reason="oversize"}`), never name suffixes.
// Names are registered without the `cefd_` prefix, which render() adds.
//
// The registry is filled at start-up while the pipeline is built and read by the exporter
// thread; registration after start() is allowed but takes a lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <span>
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

/// A Prometheus histogram with fixed bucket bounds, one writer (like a Counter).
///
/// observe() is a linear scan over the bounds plus two relaxed stores: cheap enough per batch or
/// per request, not meant per message. Buckets are stored per bucket (not cumulative) and summed
/// when scraped, so a scrape never sees a bucket smaller than the one before it; `_count` is the
/// sum of the buckets, so it always equals the +Inf bucket. `_sum` may lag the buckets by one
/// observation while a scrape races a write. Memory is allocated at construction only.
class Histogram {
public:
    /// `upper_bounds` strictly increasing, in the family's base unit; +Inf is implicit.
    explicit Histogram(std::initializer_list<double> upper_bounds);
    explicit Histogram(std::span<const double> upper_bounds);
    Histogram(const Histogram&) = delete;
    Histogram& operator=(const Histogram&) = delete;

    void observe(double value) noexcept {
        std::size_t i = 0;
        while (i < bounds_.size() && value > bounds_[i]) ++i;  // le: a value equal to a bound is in it
        bump(counts_[i]);
        sum_.store(sum_.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
    }

    [[nodiscard]] std::span<const double> upper_bounds() const noexcept { return bounds_; }
    /// Observations in bucket i alone (i == upper_bounds().size() is the +Inf bucket).
    [[nodiscard]] std::uint64_t bucket(std::size_t i) const noexcept { return read(counts_[i]); }
    [[nodiscard]] std::uint64_t count() const noexcept;
    [[nodiscard]] double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

private:
    std::vector<double> bounds_;
    std::unique_ptr<Counter[]> counts_;  // bounds_.size() + 1
    std::atomic<double> sum_{0};
};

class MetricsRegistry {
public:
    enum class Kind : std::uint8_t { counter, gauge, histogram };

    /// `name` without the cefd_ prefix; `labels` like `lane="0",reason="oversize"` or empty.
    /// A counter's name must end in `_total` (CEFD_ASSERT), and every series of a name must
    /// carry the same help and kind.
    void add(std::string_view name, std::string_view help, std::string labels,
             const Counter* value, Kind kind = Kind::counter);
    /// A gauge computed when scraped (queue depth, spool bytes). Not for hot paths.
    void add_gauge(std::string_view name, std::string_view help, std::string labels,
                   std::function<double()> value);
    /// A histogram: rendered as `_bucket{le=...}` (cumulative), `_sum` and `_count`.
    void add_histogram(std::string_view name, std::string_view help, std::string labels,
                       const Histogram* value);

    /// Prometheus text exposition format 0.0.4, one HELP/TYPE block per name.
    [[nodiscard]] std::string render() const;
    /// The current value of `name`, summed over every series whose labels include each
    /// `key="value"` pair of `labels` (all series when `labels` is empty). A histogram counts
    /// its observations. For tests and the summary line.
    [[nodiscard]] double value(std::string_view name, std::string_view labels = {}) const;
    /// True if at least one series of `name` matches `labels` (as in value()).
    [[nodiscard]] bool has(std::string_view name, std::string_view labels = {}) const;

private:
    struct Series {
        std::string name;
        std::string help;
        std::string labels;
        Kind kind;
        const Counter* counter;
        std::function<double()> gauge;
        const Histogram* histogram;
    };
    void add_series(Series series);

    mutable std::mutex mutex_;
    std::vector<Series> series_;
};

/// The periodic one-line summary, built from registered series: each field names a family
/// (and optionally labels to select), and the constructor asserts that every one is
/// registered, so renaming a metric without updating its summary field fails at start-up
/// instead of printing 0 for ever. Construct it after every stage registered its metrics.
class SummaryLine {
public:
    struct Field {
        std::string_view key;     // what the line prints: key=value
        std::string_view family;  // registered name, without cefd_
        std::string_view labels = {};
    };
    struct Group {
        std::string_view title;   // printed before the group's fields; may be empty
        std::vector<Field> fields;
    };
    SummaryLine(const MetricsRegistry& registry, std::vector<Group> groups);
    /// "title key=value key=value | title key=value ...". Takes the registry's lock.
    [[nodiscard]] std::string render() const;

private:
    const MetricsRegistry& registry_;
    std::vector<Group> groups_;
};

}  // namespace cefd
