#include "stages/dedupe/dedupe.h"

#include <xxhash.h>
#if defined(__x86_64__)
// libxxhash's runtime dispatch: the same hashes, computed with AVX2 or AVX-512 where the CPU has
// them (Debian builds the library for baseline x86-64, i.e. SSE2).
#include <xxh_x86dispatch.h>
#endif

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>

#include "engine/log.h"

namespace cefd {
namespace {

// Each hash may live in any of the `bucket_slots` entries from its home slot on. Four entries of
// 16 bytes are one cache line, so a lookup touches one or two lines.
constexpr std::uint64_t bucket_slots = 4;

std::uint64_t source_seed(const SourceAddress& source) noexcept {
    // The address without the port: a sender's ephemeral port changes between connections.
    std::uint8_t key[17];
    key[0] = source.family;
    std::memcpy(key + 1, source.addr, 16);
    return XXH3_64bits(key, sizeof(key));
}

}  // namespace

void DedupeConfig::validate(ConfigErrors& errors) const {
    // One hour: longer windows only remember more noise; the table is what bounds memory.
    errors.check_range<std::uint32_t>("dedupe.window_ms", window_ms, 0, 3'600'000);
    // 1024 entries (16 KiB) to 16 Mi entries (256 MiB) per lane.
    errors.check_range<std::uint32_t>("dedupe.max_entries", max_entries, 1'024, 1U << 24);
    errors.check("dedupe.max_entries", std::has_single_bit(max_entries), "must be a power of two");
}

Deduper::Deduper(const DedupeConfig& config)
    : window_ns_(static_cast<std::int64_t>(config.window_ms) * 1'000'000),
      table_(std::bit_ceil(std::max<std::uint32_t>(config.max_entries, bucket_slots))),
      mask_(table_.size() - 1) {}

bool Deduper::reconfigure(const DedupeConfig& config) {
    window_ns_ = static_cast<std::int64_t>(config.window_ms) * 1'000'000;
    const std::size_t size = std::bit_ceil(std::max<std::uint32_t>(config.max_entries, bucket_slots));
    if (size == table_.size()) return true;
    try {
        table_ = MappedArray<Entry>(size);
    } catch (const std::bad_alloc&) {
        CEFD_LOG(error, "dedupe: cannot allocate %zu entries (%zu MiB) for dedupe.max_entries; keeping %zu", size,
                 size * sizeof(Entry) >> 20, table_.size());
        return false;
    }
    mask_ = table_.size() - 1;
    return true;
}

std::uint64_t Deduper::key(const SourceAddress& source, std::string_view text) noexcept {
    if (window_ns_ == 0) return 0;
    std::uint64_t hash = XXH3_64bits_withSeed(text.data(), text.size(), source_seed(source));
    if (hash == 0) hash = 1;  // 0 marks an empty entry
    __builtin_prefetch(&table_[hash & mask_], 1);  // for writing: is_repeat stores into it
    return hash;
}

bool Deduper::is_repeat(std::uint64_t hash, std::int64_t now_ns) noexcept {
    if (window_ns_ == 0 || hash == 0) return false;
    const std::uint64_t home = hash & mask_;
    Entry* victim = &table_[home];
    for (std::uint64_t i = 0; i < bucket_slots; ++i) {
        Entry& entry = table_[(home + i) & mask_];
        if (entry.hash == hash) {
            // The window runs from the first sighting, so an event that really does recur is
            // still sent once per window. A clock step backwards counts as "within".
            if (now_ns - entry.seen_ns < window_ns_) {
                bump(stats_.deduplicated);
                return true;
            }
            entry.seen_ns = now_ns;
            return false;
        }
        if (entry.hash == 0 || entry.seen_ns < victim->seen_ns) victim = &entry;
        if (entry.hash == 0) break;
    }
    // Full bucket: the oldest entry goes. Its message, if repeated later, is let through.
    victim->hash = hash;
    victim->seen_ns = now_ns;
    return false;
}

void Deduper::register_metrics(MetricsRegistry& registry, const std::string& labels) const {
    registry.add("dedupe_deduplicated_total", "Messages suppressed as repeats within dedupe.window_ms.", labels,
                 &stats_.deduplicated);
}

}  // namespace cefd
