// stages/batch/batch.h: a Batcher encodes rows as JSON straight into the current batch buffer
// and, when the batch is full or old enough, gzips it and hands it to a BatchSink (the spool).
//
// Lifecycle: one Batcher per lane, owned by the lane's worker thread; not thread-safe, no lock
// on the hot path. Buffers (max_bytes + one worst-case row) are allocated at construction;
// append() never allocates. Sealing (gzip) runs on the worker thread, so compression scales
// with the number of lanes.
//
// Limits: a batch's uncompressed JSON array ("[" row "," row ... "]") is at most max_bytes.
// A single row larger than max_bytes cannot be sent at all: it is counted (`oversize_rows`) and
// dropped; with the parser's field limit this needs a message of several hundred KiB.
// Non-CEF rows for the Syslog table are batched separately (Row::table).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/batch_types.h"
#include "engine/config/config_errors.h"
#include "engine/metrics/metrics.h"
#include "engine/row/row.h"

namespace cefd {

struct BatchConfig {
    /// Uncompressed JSON bytes per request. Default and maximum: 1 MiB (Azure's limit, read in
    /// the only way that is safe under every interpretation).
    std::uint32_t max_bytes = 1'048'576;
    /// A batch is sealed at most this long after its first row arrived.
    std::uint32_t linger_ms = 1'000;
    /// gzip level 0-9. igzip: 0 -> its level 0 (the default: the least CPU per byte; about 10 %
    /// more wire bytes than 1, and Azure bills the uncompressed rows, not the wire), 1 -> 1,
    /// 2-5 -> 2, 6-9 -> 3. libdeflate: 0 and 1 -> 1 (its own 0 would store), else the level.
    std::uint32_t gzip_level = 0;
    enum class Compressor : std::uint8_t { automatic, igzip, libdeflate };
    /// "auto": ISA-L igzip when built with it, else libdeflate.
    Compressor compressor = Compressor::automatic;

    void validate(ConfigErrors& errors) const;
};

struct BatchStats {
    Counter rows{0};            // rows encoded into batches
    Counter batches{0};         // batches sealed and handed to the sink
    Counter json_bytes{0};      // uncompressed bytes sealed
    Counter gzip_bytes{0};      // compressed bytes sealed
    Counter oversize_rows{0};   // single rows over max_bytes: dropped
    Counter sink_refused{0};    // batches the sink refused (it counted the reason)
    Counter sink_refused_rows{0};
    // Per sealed batch (one observe() each, never per row). Rows: up to a 1 MiB batch of
    // ~300-byte rows. Bytes: uncompressed JSON, up to max_bytes (1 MiB at most).
    Histogram size_rows{1, 10, 50, 100, 250, 500, 1'000, 2'500, 5'000, 10'000};
    Histogram size_bytes{1'024, 4'096, 16'384, 65'536, 131'072, 262'144, 524'288, 786'432, 1'048'576};
};

class Batcher {
public:
    Batcher(const BatchConfig& config, BatchSink& sink);
    ~Batcher();
    Batcher(const Batcher&) = delete;
    Batcher& operator=(const Batcher&) = delete;

    /// Encodes `row` into the batch for its table; seals the batch first if the row would not fit.
    void append(const Row& row);
    /// Seals batches whose first row is older than linger_ms. `now_ns` is CLOCK_MONOTONIC.
    void seal_if_due(std::int64_t now_ns);
    /// Seals every non-empty batch (shutdown, tests).
    void seal_all();
    /// SIGHUP: new limits (max_bytes, linger_ms). Seals what is open first, so every batch is
    /// built under one max_bytes and no row waits; then allocates buffers for the new size (the
    /// only allocation outside construction, never on the per-message path). gzip_level and
    /// compressor are kept as they were built.
    void reconfigure_limits(std::uint32_t max_bytes, std::uint32_t linger_ms);

    [[nodiscard]] const BatchStats& stats() const noexcept { return stats_; }
    void register_metrics(MetricsRegistry& registry, const std::string& labels) const;
    /// "igzip" or "libdeflate".
    [[nodiscard]] const char* compressor_name() const noexcept;

    class Impl;

private:
    std::unique_ptr<Impl> impl_;
    BatchStats stats_;
};

}  // namespace cefd
