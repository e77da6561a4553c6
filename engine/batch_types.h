// engine/batch_types.h: what crosses the boundary batch -> spool -> send.
//
// A SealedBatch is one ready-to-send Logs Ingestion request body: a gzip-compressed JSON array
// of rows, whose uncompressed size is at most [batch] max_bytes (1 MiB by default, Azure's
// limit). Batchers produce them (one per lane, on the lane's worker thread); the spool stores
// them (BatchSink); the sender takes them from the spool (BatchSource), and acknowledges each one
// once Azure answered 204, or after it was dead-lettered.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "engine/row/row.h"

namespace cefd {

struct SealedBatch {
    std::vector<std::byte> body;           // gzip of the JSON array
    std::uint32_t rows = 0;
    std::uint32_t json_bytes = 0;          // uncompressed size of the JSON array
    std::int64_t first_receive_ns = 0;     // CLOCK_REALTIME of the oldest row
    std::int64_t last_receive_ns = 0;
    std::int64_t created_ns = 0;           // CLOCK_REALTIME when sealed
    Table table = Table::common_security_log;  // picks the DCR stream
};

/// A batch the sender is working on. `id` is the spool's handle for ack()/release().
struct SpooledBatch {
    std::uint64_t id = 0;
    SealedBatch batch;
    std::uint32_t attempts = 0;            // deliveries tried before (0 on first hand-out)
    bool replayed = false;                 // recovered from disk after a restart
};

/// Where batchers put sealed batches. Thread-safe: every lane's worker calls accept().
class BatchSink {
public:
    virtual ~BatchSink() = default;
    /// Takes ownership. Returns false when the batch was refused (spool full with
    /// when_full = "drop_newest", or a write error); the sink has counted and logged it.
    virtual bool accept(SealedBatch&& batch) = 0;
};

/// Where the sender gets batches. Called from the sender's thread only.
class BatchSource {
public:
    virtual ~BatchSource() = default;
    /// The oldest batch not yet handed out (replayed ones first), or nullopt, after waiting
    /// up to `timeout_ns` for one to arrive.
    virtual std::optional<SpooledBatch> next(std::int64_t timeout_ns) = 0;
    /// Delivered (or dead-lettered): forget it for good.
    virtual void ack(std::uint64_t id) = 0;
    /// Not delivered: hand it out again later (the sender owns the backoff schedule).
    virtual void release(SpooledBatch&& batch) = 0;
    /// Batches stored but not yet acknowledged (for shutdown and metrics).
    [[nodiscard]] virtual std::size_t pending() const = 0;
};

}  // namespace cefd
