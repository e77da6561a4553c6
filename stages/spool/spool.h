// stages/spool/spool.h: the disk spool between the batchers and the sender: at-least-once.
//
// Every sealed batch is written to disk before it is handed to the sender (mode "always"), and
// stays there until the sender acknowledges it; on start-up every unacknowledged batch is
// replayed before new data. The on-disk format is documented once, at the top of record.h.
//
// Threads: accept() is called by every lane's worker (it takes a short lock); next(), ack() and
// release() by the sender thread only. Spool::open() runs recovery before the pipeline starts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

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
    Fsync fsync = Fsync::interval;
    std::uint32_t fsync_interval_ms = 1'000;
    /// Bytes on disk at most (compressed batches). What happens beyond: when_full.
    std::uint64_t max_bytes = 10ULL * 1024 * 1024 * 1024;
    enum class WhenFull : std::uint8_t { drop_oldest, drop_newest, block };
    WhenFull when_full = WhenFull::drop_oldest;
    /// Bytes per segment file before a new one is started.
    std::uint32_t segment_bytes = 64 * 1024 * 1024;

    void validate(ConfigErrors& errors) const;
};

struct SpoolStats {
    Counter batches_written{0};
    Counter bytes_written{0};
    Counter batches_acked{0};
    Counter batches_replayed{0};   // handed out again after a restart
    Counter rows_replayed{0};
    Counter dropped_batches{0};    // when_full dropped them (oldest or newest)
    Counter dropped_rows{0};
    Counter corrupt_records{0};    // bad checksum/length found on read: skipped, segment kept aside
    Counter write_errors{0};       // ENOSPC/EIO on write
};

class Spool final : public BatchSink, public BatchSource {
public:
    static Result<std::unique_ptr<Spool>> open(const SpoolConfig& config);
    ~Spool() override;

    bool accept(SealedBatch&& batch) override;
    std::optional<SpooledBatch> next(std::int64_t timeout_ns) override;
    void ack(std::uint64_t id) override;
    void release(SpooledBatch&& batch) override;
    [[nodiscard]] std::size_t pending() const override;

    [[nodiscard]] const SpoolStats& stats() const noexcept;
    void register_metrics(MetricsRegistry& registry) const;

    class Impl;

private:
    explicit Spool(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace cefd
