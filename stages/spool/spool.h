// stages/spool/spool.h: the disk spool between the batchers and the sender: at-least-once.
//
// Every sealed batch is written to disk before it is handed to the sender (mode "always"), and
// stays there until the sender acknowledges it; on start-up every unacknowledged batch is
// replayed before new data; a segment that cannot be opened (permissions) is kept, counted and
// reported, and its ids are never reused. The on-disk format is documented once, at the top of
// record.h.
//
// Threads: accept() is called by every lane's worker (it takes a short lock); next(), ack() and
// release() by the sender thread only. Spool::open() runs recovery before the pipeline starts.
// One mutex guards everything (a batch is ~100 KiB and there are ~100 a second); with
// fsync = "batch" the fdatasync runs under it, so lanes take turns on the disk.
//
// Memory: an index entry per unacknowledged record (~100 bytes); bodies are read back from disk
// (pread, page cache) when next() hands them out, except in mode "always" the last few written
// while the sender keeps up (handoff_batches), which it gets from memory. In mode "overflow" at most
// overflow_memory_batches bodies wait in memory, plus a copy of each one the sender holds.
//
// Full (max_bytes): see WhenFull. Every batch that is not stored is counted (dropped_batches,
// dropped_rows, and a per-reason counter) and logged at most once per 10 s.
// Disk errors (ENOSPC, EIO): counted (write_errors), the gauge spool_write_failing is 1 until a
// write succeeds again (after a failed fdatasync: until an fdatasync succeeds); ENOSPC/EDQUOT are handled like a full
// spool, other errors drop only the new batch (never stored ones). See README.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "engine/batch_types.h"
#include "engine/config/config_errors.h"
#include "engine/metrics/metrics.h"
#include "engine/result.h"

namespace cefd {

struct SpoolConfig {
    /// Directory for segment files; created (0700) if missing.
    std::string dir = "/var/lib/cefd/spool";
    enum class Mode : std::uint8_t { always, overflow };
    /// "always": every batch is written before it is sent. "overflow": batches go straight to
    /// the sender and spill to disk only when the sender falls behind or Azure is unreachable.
    Mode mode = Mode::always;
    enum class Fsync : std::uint8_t { batch, interval, never };
    /// When written batches are fsync'ed: after each one, every fsync_interval_ms, or never.
    /// What a power cut can lose in each mode: README.md. A process crash loses nothing.
    Fsync fsync = Fsync::interval;
    std::uint32_t fsync_interval_ms = 1'000;
    /// Bytes of segment files at most. What happens beyond: when_full. Must hold two segments.
    std::uint64_t max_bytes = 10ULL * 1024 * 1024 * 1024;
    /// drop_oldest: delete the oldest segment (its unsent batches are counted as dropped).
    /// drop_newest: refuse the new batch. block: accept() waits for the sender to free space,
    /// at most block_timeout_ms, then drops the new batch (so a lane can still shut down).
    enum class WhenFull : std::uint8_t { drop_oldest, drop_newest, block };
    WhenFull when_full = WhenFull::drop_oldest;
    std::uint32_t block_timeout_ms = 5'000;
    /// Bytes per segment file before a new one is started.
    std::uint32_t segment_bytes = 64 * 1024 * 1024;
    /// mode = "overflow": batches waiting in memory before new ones spill to disk.
    std::uint32_t overflow_memory_batches = 8;
    /// mode = "always": while at most this many batches wait for the sender, a new batch's body
    /// also stays in memory after it is written, and next() hands that copy out instead of
    /// reading the record back (pread + CRC). 0: every body is read back. Not a config key.
    std::uint32_t handoff_batches = 4;
    /// Damaged files kept in dir/corrupt/; the oldest are removed beyond this.
    std::uint32_t corrupt_files_max = 32;

    void validate(ConfigErrors& errors) const;
};

struct SpoolStats {
    Counter batches_written{0};
    Counter bytes_written{0};
    Counter batches_acked{0};
    Counter batches_replayed{0};   // handed out again after a restart
    Counter rows_replayed{0};
    Counter dropped_batches{0};    // not stored, or deleted unsent: every reason below
    Counter dropped_rows{0};
    Counter corrupt_records{0};    // bad checksum/length found on read: skipped, segment kept aside
    Counter write_errors{0};       // ENOSPC/EIO on write
    Counter corrupt_acks{0};       // ack logs found torn, damaged or missing (causes duplicates)
    Counter read_errors{0};        // pread failed on a record (also counted in corrupt_records)
    Counter batches_spilled{0};    // mode = overflow: written to disk instead of memory
    Counter batches_from_memory{0};  // mode = always: handed out from memory, not read back
    Counter fsyncs{0};             // fdatasync calls on segments and ack logs (several writers: add())
    Counter unknown_files{0};      // files at open whose names are not a spool file's: moved to corrupt/
    Counter segment_start_errors{0};  // a new segment could not be created (EMFILE...): appended to the active one
    Counter unreadable_segments{0};   // segments open() could not open (EACCES...): kept, not sent
    // dropped_batches by reason (they sum to dropped_batches):
    Counter dropped_oldest{0};         // when_full = drop_oldest deleted them unsent
    Counter dropped_newest{0};         // when_full = drop_newest refused them
    Counter dropped_block_timeout{0};  // when_full = block waited block_timeout_ms in vain
    Counter dropped_too_large{0};      // one batch larger than max_bytes or the record limit
    Counter dropped_write_error{0};    // a write failed: no room could be made, or not a full disk
    Counter dropped_damaged{0};        // stored, but its body failed its CRC when read back
};

class Spool final : public BatchSink, public BatchSource {
public:
    static Result<std::unique_ptr<Spool>> open(const SpoolConfig& config);
    ~Spool() override;

    /// A file in the spool directory that is not the spool's but is left alone by recovery:
    /// the receive engine that receive.engine = "auto" measured (stages/receive/engine_choice.h).
    static constexpr std::string_view receive_engine_file = "RECEIVE-ENGINE";

    bool accept(SealedBatch&& batch) override;
    std::optional<SpooledBatch> next(std::int64_t timeout_ns) override;
    void ack(std::uint64_t id) override;
    void release(SpooledBatch&& batch) override;
    [[nodiscard]] std::size_t pending() const override;

    [[nodiscard]] const SpoolStats& stats() const noexcept;
    /// Bytes of segment files on disk (the spool_bytes gauge).
    [[nodiscard]] std::uint64_t bytes() const;
    /// Segments found at open that could not be opened (permissions): their batches are on disk
    /// but not in pending() (the spool_unreadable_segments gauge).
    [[nodiscard]] std::size_t unreadable_segments() const;
    /// True from a failed write until the next successful one, and from a failed fdatasync until
    /// the next successful fdatasync (the spool_write_failing gauge).
    [[nodiscard]] bool write_failing() const noexcept;
    void register_metrics(MetricsRegistry& registry) const;

    class Impl;

private:
    explicit Spool(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace cefd
