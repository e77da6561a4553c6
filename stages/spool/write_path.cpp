// stages/spool/write_path.cpp: accept() and everything it can lead to: the max_bytes limit and when_full,
// appending a record, disk errors, counting drops, and spilling memory batches (mode overflow).
#include "stages/spool/spool_impl.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "engine/log.h"

namespace cefd {

void Spool::Impl::count_drop_locked(Drop reason, std::uint64_t rows, std::uint64_t batches) {
    bump(stats_.dropped_batches, batches);
    bump(stats_.dropped_rows, rows);
    const char* name = "";
    switch (reason) {
        case Drop::oldest: bump(stats_.dropped_oldest, batches); name = "when_full = drop_oldest"; break;
        case Drop::newest: bump(stats_.dropped_newest, batches); name = "when_full = drop_newest"; break;
        case Drop::block_timeout:
            bump(stats_.dropped_block_timeout, batches);
            name = "when_full = block, waited block_timeout_ms";
            break;
        case Drop::too_large: bump(stats_.dropped_too_large, batches); name = "batch larger than the spool"; break;
        case Drop::write_error: bump(stats_.dropped_write_error, batches); name = "write error"; break;
        case Drop::damaged:
            bump(stats_.dropped_damaged, batches);
            name = "damaged on disk";
            break;
    }
    // Logged after counting, so the total includes every batch of a deleted segment.
    CEFD_LOG_EVERY(log_every_s, warn, "spool: dropped %llu batch(es) of %llu rows (%s); %llu batches so far",
                   static_cast<unsigned long long>(batches), static_cast<unsigned long long>(rows), name,
                   static_cast<unsigned long long>(read(stats_.dropped_batches)));
}

void Spool::Impl::note_write_error_locked(int error, const char* what) {
    bump(stats_.write_errors);
    write_failing_.store(true, std::memory_order_relaxed);
    switch (error) {
        case ENOSPC:  // the file system is full (other files, or max_bytes above the free space)
        case EDQUOT:  // the cefd user's disk quota
            CEFD_LOG_EVERY(log_every_s, error, "spool: disk full in %s while %s", config_.dir.c_str(), what);
            break;
        case EMFILE:  // cefd's open-file limit (RLIMIT_NOFILE): many TCP connections?
        case ENFILE:  // the system-wide open-file limit (fs.file-max)
            CEFD_LOG_EVERY(log_every_s, error, "spool: open-file limit reached (%s) in %s while %s; retrying",
                           std::strerror(error), config_.dir.c_str(), what);
            break;
        case EIO:  // the device reported an error: check dmesg
            CEFD_LOG_EVERY(log_every_s, error, "spool: I/O error in %s while %s", config_.dir.c_str(), what);
            break;
        default:
            CEFD_LOG_EVERY(log_every_s, error, "spool: unexpected errno %d (%s) in %s while %s", error,
                           std::strerror(error), config_.dir.c_str(), what);
    }
}

void Spool::Impl::note_sync_error_locked(int error, const char* what, bool directory) {
    note_write_error_locked(error, what);
    ++sync_errors_seen_;
    if (directory) dir_dirty_ = true;
    else data_unsynced_ = true;
    if (!sync_failing_.exchange(true, std::memory_order_relaxed))
        CEFD_LOG(error, "spool: batches written to %s since the last good fdatasync may not survive a crash",
                 config_.dir.c_str());
}

int Spool::Impl::append_record_locked(Segment& segment, std::uint64_t id, const RecordHeader& header,
                                      std::span<const std::byte> body, const StoreOptions& options) {
    const HeaderBytes bytes = spool::encode_header(header);
    int rc = write_record_at(segment.fd.get(), bytes, body, segment.bytes);
    if (rc == 0 && config_.fsync == SpoolConfig::Fsync::batch) {
        add(stats_.fsyncs);
        if (::fdatasync(segment.fd.get()) != 0) rc = errno;
        // A segment whose directory entry is not synced could vanish with the batch in it.
        if (rc == 0 && dir_dirty_) rc = fsync_dir_locked();
    }
    if (rc != 0) {
        // Cut off whatever part was written, so the next record follows the last good one.
        if (::ftruncate(segment.fd.get(), static_cast<off_t>(segment.bytes)) != 0)
            segment.closed_for_appends = true;
        return rc;
    }
    const std::uint64_t record_bytes = header_bytes + body.size();
    Entry entry{.seq = segment.seq, .offset = segment.bytes, .header = header,
                .attempts = options.attempts, .replayed = options.replayed};
    segment.bytes += record_bytes;
    segment.ids.push_back(id);
    ++segment.live;
    disk_bytes_ += record_bytes;
    active_dirty_ = true;
    entries_.insert_or_assign(id, entry);
    ready_.insert(id);
    bump(stats_.batches_written);
    bump(stats_.bytes_written, record_bytes);
    return 0;
}

int Spool::Impl::append_to_active_locked(std::uint64_t id, const RecordHeader& header,
                                         std::span<const std::byte> body, const StoreOptions& options) {
    const std::uint64_t record_bytes = header_bytes + body.size();
    if (active().closed_for_appends ||
        (active().bytes > 0 && active().bytes + record_bytes > config_.segment_bytes)) {
        if (Status st = open_new_segment_locked(); !st) {
            const int error = st.error().sys != 0 ? st.error().sys : EIO;
            if (active().closed_for_appends) return error;
            // segment_bytes is a soft bound: the active segment takes this record too, and the
            // next append tries again. So a failure to create files (EMFILE at the open-file
            // limit, say) costs a longer segment, never a batch.
            bump(stats_.segment_start_errors);
            CEFD_LOG_EVERY(log_every_s, warn,
                           "spool: cannot start a new segment in %s (errno %d: %s); appending to segment %llu "
                           "(%llu bytes) and retrying",
                           config_.dir.c_str(), error, std::strerror(error),
                           static_cast<unsigned long long>(active_seq_),
                           static_cast<unsigned long long>(active().bytes));
        }
    }
    return append_record_locked(active(), id, header, body, options);
}

int Spool::Impl::append_locked(std::uint64_t id, const SealedBatch& batch, const StoreOptions& options) {
    const RecordHeader header{
        .table = static_cast<std::uint8_t>(batch.table),
        .body_bytes = static_cast<std::uint32_t>(batch.body.size()),
        .body_crc32c = spool::crc32c(batch.body),
        .id = id,
        .rows = batch.rows,
        .json_bytes = batch.json_bytes,
        .first_receive_ns = batch.first_receive_ns,
        .last_receive_ns = batch.last_receive_ns,
        .created_ns = batch.created_ns,
    };
    return append_to_active_locked(id, header, batch.body, options);
}

bool Spool::Impl::store_locked(Lock& lock, std::uint64_t id, const SealedBatch& batch,
                               const StoreOptions& options) {
    const std::uint64_t record_bytes = header_bytes + batch.body.size();
    auto refuse = [&](Drop reason) {
        if (options.count_drop) count_drop_locked(reason, batch.rows);
        return false;
    };
    if (batch.body.size() > spool::record_body_bytes_max || record_bytes > config_.max_bytes)
        return refuse(Drop::too_large);
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(config_.block_timeout_ms);
    const bool may_block = options.may_block && config_.when_full == SpoolConfig::WhenFull::block;
    // Bounded: reclaiming leaves an empty active segment (so it succeeds once in a row),
    // drop_oldest removes a segment per pass (finitely many), block ends at the deadline,
    // drop_newest returns at once.
    for (;;) {
        if (!options.ignore_max_bytes && disk_bytes_ + record_bytes > config_.max_bytes) {
            if (reclaim_acked_active_locked()) continue;
            if (config_.when_full == SpoolConfig::WhenFull::drop_oldest) {
                if (drop_oldest_segment_locked()) continue;
                // Only the active segment is left and no new one could start (e.g. EMFILE):
                // the policy could not make room, which is write_error, not one batch too large.
                return refuse(Drop::write_error);
            }
            if (!may_block) return refuse(Drop::newest);
            if (space_cv_.wait_until(lock, deadline) == std::cv_status::timeout &&
                disk_bytes_ + record_bytes > config_.max_bytes)
                return refuse(Drop::block_timeout);
            continue;
        }
        const int rc = append_locked(id, batch, options);
        if (rc == 0) {
            if (write_failing_.exchange(false, std::memory_order_relaxed) &&
                !sync_failing_.load(std::memory_order_relaxed))
                CEFD_LOG(info, "spool: writes to %s succeed again", config_.dir.c_str());
            ready_cv_.notify_one();
            return true;
        }
        note_write_error_locked(rc, "writing a batch");
        if (reclaim_acked_active_locked()) continue;
        // Only a full disk is a full spool. Deleting unsent batches cannot help with EMFILE, EIO
        // or anything else: the new batch is dropped (or, with block, retried) instead.
        const bool disk_full = rc == ENOSPC || rc == EDQUOT;
        if (disk_full && config_.when_full == SpoolConfig::WhenFull::drop_oldest) {
            if (drop_oldest_segment_locked()) continue;
            return refuse(Drop::write_error);
        }
        if (!may_block) return refuse(Drop::write_error);
        // Wait for an ack to free space (or 100 ms, in case something else frees it), then retry.
        const auto retry_at = std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
        space_cv_.wait_until(lock, retry_at);
        if (std::chrono::steady_clock::now() >= deadline) return refuse(Drop::write_error);
    }
}

void Spool::Impl::reserve_ids_locked(std::uint64_t id) {
    const std::uint64_t floor = id + spool::id_reserve_batches;
    const spool::IdFloorBytes bytes = spool::encode_id_floor(floor);
    // In place: 16 bytes in one sector, and no new block to allocate on a full disk.
    int rc = 0;
    if (::pwrite(ids_fd_.get(), bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size()))
        rc = errno != 0 ? errno : EIO;
    if (rc == 0 && config_.fsync != SpoolConfig::Fsync::never) {
        add(stats_.fsyncs);
        if (::fdatasync(ids_fd_.get()) != 0) rc = errno;
    }
    // Not raised on failure, so the next batch tries again. Ids above an unwritten floor are
    // only at risk if a segment is also unreadable at the next start.
    if (rc != 0) {
        note_write_error_locked(rc, "raising the id floor");
        return;
    }
    id_floor_ = floor;
}

bool Spool::Impl::accept(SealedBatch&& batch) {
    Lock lock(mutex_);
    const std::uint64_t id = next_id_++;
    if (id >= id_floor_) reserve_ids_locked(id);
    if (config_.mode == SpoolConfig::Mode::overflow) {
        // Straight to the sender while it keeps up: nothing waiting on disk (order) and only a
        // few batches waiting in memory.
        if (ready_.empty() && memory_ready_.size() < config_.overflow_memory_batches) {
            memory_ready_.push_back(MemoryBatch{.id = id, .batch = std::move(batch)});
            ready_cv_.notify_one();
            return true;
        }
        const bool stored = store_locked(lock, id, batch, StoreOptions{});
        if (stored) bump(stats_.batches_spilled);
        return stored;
    }
    if (!store_locked(lock, id, batch, StoreOptions{})) return false;
    // The sender keeps up (few batches wait): it gets this body from memory, not from the disk.
    // Every record holding a body is in ready_, and one is added only while ready_ is this
    // short, so at most handoff_batches bodies are held.
    if (ready_.size() <= config_.handoff_batches) {
        if (auto it = entries_.find(id); it != entries_.end()) it->second.body = std::move(batch.body);
    }
    return true;
}


void Spool::Impl::spill_memory_locked(Lock& lock) {
    // Bounded: each pass removes one batch from memory.
    while (!memory_ready_.empty()) {
        MemoryBatch memory = std::move(memory_ready_.front());
        memory_ready_.pop_front();
        const StoreOptions options{.attempts = memory.attempts, .may_block = false};
        if (store_locked(lock, memory.id, memory.batch, options)) bump(stats_.batches_spilled);
    }
    for (auto& [id, batch] : memory_inflight_) {
        if (store_locked(lock, id, batch, StoreOptions{.may_block = false})) bump(stats_.batches_spilled);
    }
    memory_inflight_.clear();
}

}  // namespace cefd
