// stages/spool/spool.cpp: the facade: config validation, Spool's public methods (each forwards to
// Spool::Impl), metrics registration, the interval fsync thread and shutdown. The format and
// recovery rules are in record.h; the threading and memory rules in spool.h; limits and fsync
// guarantees in README.md; which file holds what in spool_impl.h.
#include "stages/spool/spool_impl.h"

#include <unistd.h>

#include <chrono>
#include <vector>

#include "engine/log.h"

namespace cefd {

void SpoolConfig::validate(ConfigErrors& errors) const {
    errors.check("spool.dir", !dir.empty(), "must not be empty");
    errors.check_range<std::uint32_t>("spool.fsync_interval_ms", fsync_interval_ms, 1, 60'000);
    // 4 KiB: small enough for tests; 1 GiB: a segment is rewritten whole when it is damaged.
    errors.check_range<std::uint32_t>("spool.segment_bytes", segment_bytes, 4'096, 1U << 30);
    errors.check("spool.max_bytes", max_bytes >= 2ULL * segment_bytes,
                 "must hold at least two segments (2 * spool.segment_bytes)");
    errors.check_range<std::uint32_t>("spool.block_timeout_ms", block_timeout_ms, 1, 600'000);
    errors.check_range<std::uint32_t>("spool.overflow_memory_batches", overflow_memory_batches, 1,
                                      1'024);
    errors.check_range<std::uint32_t>("spool.corrupt_files_max", corrupt_files_max, 0, 100'000);
}

void Spool::Impl::fsync_loop(std::stop_token stop) {
    const auto interval = std::chrono::milliseconds(config_.fsync_interval_ms);
    // Bounded: ends when stop is requested (the destructor).
    while (!stop.stop_requested()) {
        std::vector<int> fds;
        int dir_fd = -1;         // the directory, when its last fsync failed
        bool dir_left = false;  // ... and it could not be dup()ed: not synced in this pass
        std::uint64_t errors_before = 0;
        {
            std::unique_lock lock(mutex_);
            fsync_cv_.wait_for(lock, stop, interval, [] { return false; });
            if (stop.stop_requested()) break;
            // dup() so the fdatasync runs without the lock, and a segment deleted meanwhile
            // only closes its own descriptor.
            if (active_dirty_) {
                fds.push_back(::dup(active().fd.get()));
                active_dirty_ = false;
            }
            for (auto& [seq, segment] : segments_) {
                if (segment.ack_dirty) {
                    fds.push_back(::dup(segment.ack_fd.get()));
                    segment.ack_dirty = false;
                }
            }
            if (dir_dirty_) {
                dir_fd = ::dup(dir_fd_.get());
                dir_left = dir_dirty_ = dir_fd < 0;
            }
            errors_before = sync_errors_seen_;
        }
        bool all_synced = (!fds.empty() || dir_fd >= 0) && !dir_left;
        if (dir_fd >= 0) {
            if (::fsync(dir_fd) != 0) {
                const int error = errno;
                all_synced = false;
                std::lock_guard lock(mutex_);
                note_sync_error_locked(error, "syncing the directory", true);
            }
            ::close(dir_fd);
        }
        for (const int fd : fds) {
            if (fd < 0) {
                all_synced = false;
                continue;
            }
            add(stats_.fsyncs);
            if (::fdatasync(fd) != 0) {
                const int error = errno;
                all_synced = false;
                std::lock_guard lock(mutex_);
                note_sync_error_locked(error, "fsyncing");
            }
            ::close(fd);
        }
        if (!all_synced) continue;
        // Clear the alarm only when this pass covered every failure: none came while it ran (a
        // writer's failed sync of the directory, a full segment's), the directory is synced, and a
        // file's failed fdatasync was followed by a good one (a pass that synced only the
        // directory does not prove that).
        std::lock_guard lock(mutex_);
        if (!fds.empty()) data_unsynced_ = false;
        if (sync_errors_seen_ != errors_before || dir_dirty_ || data_unsynced_) continue;
        if (sync_failing_.exchange(false, std::memory_order_relaxed))
            CEFD_LOG(info, "spool: fdatasync in %s succeeds again", config_.dir.c_str());
    }
}

Spool::Impl::~Impl() {
    if (fsync_thread_.joinable()) {
        fsync_thread_.request_stop();
        fsync_thread_.join();
    }
    if (!dir_fd_.valid() || active_seq_ == 0) return;  // open() failed early
    Lock lock(mutex_);
    spill_memory_locked(lock);
    if (!unreadable_.empty()) {
        // pending() cannot count these (their records were never read), so say so here: a
        // shutdown line reading "0 batches left" would otherwise hide them.
        CEFD_LOG(error,
                 "spool: closing with %zu unsent batch(es) plus %zu segment(s) (%llu bytes, first %s) that "
                 "could not be read at start: their batches were not sent; make them readable and restart",
                 entries_.size(), unreadable_.size(), static_cast<unsigned long long>(unreadable_bytes_),
                 path(file_name(*unreadable_.begin(), "seg")).c_str());
    }
    if (config_.fsync != SpoolConfig::Fsync::never) {
        for (auto& [seq, segment] : segments_) {
            if (seq == active_seq_) ::fdatasync(segment.fd.get());
            if (segment.ack_dirty) ::fdatasync(segment.ack_fd.get());
        }
    }
    if (segments_.contains(active_seq_) && active().live == 0) {
        const std::uint64_t seq = active_seq_;
        active_seq_ = 0;
        delete_segment_locked(seq, false);
        sync_dir_locked();
    }
}

Spool::Spool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Spool::~Spool() = default;

Result<std::unique_ptr<Spool>> Spool::open(const SpoolConfig& config) {
    auto impl = std::make_unique<Impl>(config);
    if (Status st = impl->open(); !st) return st.error();
    return std::unique_ptr<Spool>(new Spool(std::move(impl)));
}

bool Spool::accept(SealedBatch&& batch) { return impl_->accept(std::move(batch)); }
std::optional<SpooledBatch> Spool::next(std::int64_t timeout_ns) { return impl_->next(timeout_ns); }
void Spool::ack(std::uint64_t id) { impl_->ack(id); }
void Spool::release(SpooledBatch&& batch) { impl_->release(std::move(batch)); }
std::size_t Spool::pending() const { return impl_->pending(); }
const SpoolStats& Spool::stats() const noexcept { return impl_->stats_; }
std::uint64_t Spool::bytes() const { return impl_->bytes(); }
std::size_t Spool::unreadable_segments() const { return impl_->unreadable_segments(); }
bool Spool::write_failing() const noexcept { return impl_->failing(); }

void Spool::register_metrics(MetricsRegistry& registry) const {
    const SpoolStats& s = impl_->stats_;
    const struct {
        const char* name;
        const char* help;
        const Counter* counter;
    } counters[] = {
        {"spool_batches_written_total", "Batches written to the spool", &s.batches_written},
        {"spool_bytes_written_total", "Bytes written to spool segments", &s.bytes_written},
        {"spool_batches_acked_total", "Batches the sender acknowledged", &s.batches_acked},
        {"spool_batches_replayed_total", "Batches handed out again after a restart", &s.batches_replayed},
        {"spool_rows_replayed_total", "Rows handed out again after a restart", &s.rows_replayed},
        {"spool_dropped_batches_total", "Batches not stored or deleted unsent", &s.dropped_batches},
        {"spool_dropped_rows_total", "Rows in dropped batches", &s.dropped_rows},
        {"spool_corrupt_records_total", "Damaged records skipped", &s.corrupt_records},
        {"spool_write_errors_total", "Failed writes or fsyncs (ENOSPC, EIO)", &s.write_errors},
        {"spool_corrupt_acks_total", "Ack logs found damaged or missing", &s.corrupt_acks},
        {"spool_read_errors_total", "Failed reads of a record", &s.read_errors},
        {"spool_batches_spilled_total", "Overflow mode: batches written to disk", &s.batches_spilled},
        {"spool_batches_from_memory_total", "Always mode: batches handed to the sender from memory, not read back",
         &s.batches_from_memory},
        {"spool_fsyncs_total", "fdatasync calls on segments and ack logs", &s.fsyncs},
        {"spool_unknown_files_total", "Files with names that are not a spool file's, moved to corrupt/",
         &s.unknown_files},
        {"spool_segment_start_errors_total", "New segments that could not be created (EMFILE, ENFILE...)",
         &s.segment_start_errors},
    };
    for (const auto& c : counters) registry.add(c.name, c.help, "", c.counter);
    const struct {
        const char* reason;
        const Counter* counter;
    } drops[] = {
        {"oldest", &s.dropped_oldest},
        {"newest", &s.dropped_newest},
        {"block_timeout", &s.dropped_block_timeout},
        {"too_large", &s.dropped_too_large},
        {"write_error", &s.dropped_write_error},
        {"damaged", &s.dropped_damaged},
    };
    for (const auto& d : drops) {
        registry.add("spool_drops_total", "Batches dropped, by reason",
                     std::string("reason=\"") + d.reason + "\"", d.counter);
    }
    const Impl* impl = impl_.get();
    registry.add_gauge("spool_bytes", "Bytes of segment files on disk", "",
                       [impl] { return static_cast<double>(impl->bytes()); });
    registry.add_gauge("spool_pending_batches", "Batches stored and not yet acknowledged", "",
                       [impl] { return static_cast<double>(impl->pending()); });
    registry.add_gauge("spool_unreadable_segments", "Segments on disk that could not be opened at start", "",
                       [impl] { return static_cast<double>(impl->unreadable_segments()); });
    registry.add_gauge("spool_write_failing", "1 while spool writes fail (disk full or I/O error)", "",
                       [impl] { return impl->failing() ? 1.0 : 0.0; });
}

}  // namespace cefd
