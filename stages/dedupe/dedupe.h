// stages/dedupe/dedupe.h: suppresses exact repeats of a message from the same sender within a
// time window (a device configured twice, a relay that retransmits). See README.md for what it
// catches and what it cannot.
//
// Lifecycle: one Deduper per lane, owned by the lane's worker thread; not thread-safe. The table
// is allocated once at construction (max_entries slots) and never grows: when it is full the
// oldest entry in the probed bucket is overwritten, so memory stays bounded and a repeat may,
// rarely, be let through (never a distinct message suppressed, except for a 64-bit hash
// collision). Repeats are counted as `deduplicated`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/config/config_errors.h"
#include "engine/metrics/metrics.h"
#include "engine/record.h"
#include "engine/runtime/mapped_array.h"

namespace cefd {

struct DedupeConfig {
    /// How long a message is remembered; 0 turns the stage off.
    std::uint32_t window_ms = 10'000;
    /// Entries remembered per lane (a power of two); bounds memory at 16 bytes each.
    std::uint32_t max_entries = 65'536;

    void validate(ConfigErrors& errors) const;
};

struct DedupeStats {
    Counter deduplicated{0};  // messages suppressed as repeats
};

class Deduper {
public:
    explicit Deduper(const DedupeConfig& config);

    /// True if the same `text` from the same `source` was seen within the window (then it is
    /// counted and must not be sent). `now_ns` is the message's receive time.
    bool is_repeat(const SourceAddress& source, std::string_view text, std::int64_t now_ns) {
        return is_repeat(key(source, text), now_ns);
    }
    /// The same in two steps. key() hashes `text` from `source` and asks for the cache line of
    /// its table entry; is_repeat(key, now_ns), called a microsecond later (after the parse),
    /// then finds that line in cache instead of waiting ~100 ns for memory. 0 = dedupe is off.
    std::uint64_t key(const SourceAddress& source, std::string_view text) noexcept;
    bool is_repeat(std::uint64_t key, std::int64_t now_ns) noexcept;
    /// SIGHUP: takes a new window and table size. A new max_entries replaces the table (it
    /// allocates; never on the per-message path), so what was remembered is forgotten and a
    /// repeat may pass once: never is a distinct message suppressed. False (logged) when the new
    /// table cannot be allocated (RLIMIT_AS, strict overcommit): the old one stays, and so does
    /// the process (the exception would have ended it, from a worker thread).
    bool reconfigure(const DedupeConfig& config);

    [[nodiscard]] const DedupeStats& stats() const noexcept { return stats_; }
    void register_metrics(MetricsRegistry& registry, const std::string& labels) const;

private:
    struct Entry {
        std::uint64_t hash = 0;
        std::int64_t seen_ns = 0;
    };
    std::int64_t window_ns_;
    MappedArray<Entry> table_;  // huge pages: a lookup is one cache miss, not also a TLB miss
    std::uint64_t mask_;
    DedupeStats stats_;
};

}  // namespace cefd
