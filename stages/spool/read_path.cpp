// stages/spool/read_path.cpp: the sender's side: next() reads a record back and checks it, ack() records
// an acknowledgement (and frees a segment once all of it is acknowledged), release() hands a
// batch back for another attempt.
#include "stages/spool/spool_impl.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "engine/log.h"

namespace cefd {

/// Reads `entry`'s body back from its segment and checks its CRC. False: damaged (counted,
/// logged, set aside and acknowledged here).
bool Spool::Impl::read_body_locked(std::uint64_t id, const Entry& entry, Segment& segment,
                                   std::vector<std::byte>& body) {
    body.resize(entry.header.body_bytes);
    const bool read_ok = read_exact_at(segment.fd.get(), body.data(), body.size(), entry.offset + header_bytes);
    if (read_ok && spool::crc32c(body) == entry.header.body_crc32c) return true;
    if (!read_ok) bump(stats_.read_errors);
    bump(stats_.corrupt_records);
    CEFD_LOG_EVERY(log_every_s, error,
                   "spool: batch %llu in segment %llu is damaged (%s); skipped, segment copied to corrupt/",
                   static_cast<unsigned long long>(id), static_cast<unsigned long long>(entry.seq),
                   read_ok ? "bad checksum" : std::strerror(errno));
    quarantine_copy_locked(segment);
    count_drop_locked(Drop::damaged, entry.header.rows);
    ack_locked(id);
    return false;
}

std::optional<SpooledBatch> Spool::Impl::next(std::int64_t timeout_ns) {
    Lock lock(mutex_);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(timeout_ns);
    // Bounded: each pass hands out a batch, removes a corrupt one, or waits until the deadline.
    for (;;) {
        const bool have_disk = !ready_.empty();
        const bool have_memory = !memory_ready_.empty();
        if (!have_disk && !have_memory) {
            if (ready_cv_.wait_until(lock, deadline) == std::cv_status::timeout &&
                ready_.empty() && memory_ready_.empty())
                return std::nullopt;
            continue;
        }
        if (have_memory && (!have_disk || memory_ready_.front().id < *ready_.begin())) {
            MemoryBatch memory = std::move(memory_ready_.front());
            memory_ready_.pop_front();
            // The copy stays until ack or release, so a clean shutdown can still spill it.
            SpooledBatch out{.id = memory.id, .batch = memory.batch, .attempts = memory.attempts};
            memory_inflight_.emplace(memory.id, std::move(memory.batch));
            return out;
        }
        const std::uint64_t id = *ready_.begin();
        ready_.erase(ready_.begin());
        Entry& entry = entries_.at(id);
        Segment& segment = segments_.at(entry.seq);
        SpooledBatch out;
        out.id = id;
        if (!entry.body.empty()) {
            out.batch.body = std::exchange(entry.body, {});
            bump(stats_.batches_from_memory);
        } else if (!read_body_locked(id, entry, segment, out.batch.body)) {
            continue;  // damaged: counted and acknowledged
        }
        out.batch.rows = entry.header.rows;
        out.batch.json_bytes = entry.header.json_bytes;
        out.batch.first_receive_ns = entry.header.first_receive_ns;
        out.batch.last_receive_ns = entry.header.last_receive_ns;
        out.batch.created_ns = entry.header.created_ns;
        out.batch.table = static_cast<Table>(entry.header.table);
        out.attempts = entry.attempts;
        out.replayed = entry.replayed;
        if (entry.replayed && !entry.replay_counted) {
            entry.replay_counted = true;
            bump(stats_.batches_replayed);
            bump(stats_.rows_replayed, entry.header.rows);
        }
        entry.in_flight = true;
        return out;
    }
}

void Spool::Impl::ack_locked(std::uint64_t id) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    const std::uint64_t seq = it->second.seq;
    ready_.erase(id);
    entries_.erase(it);
    Segment& segment = segments_.at(seq);
    const AckBytes bytes = spool::encode_ack(id);
    int rc = write_all(segment.ack_fd.get(), bytes.data(), bytes.size());
    if (rc == 0 && config_.fsync == SpoolConfig::Fsync::batch) {
        add(stats_.fsyncs);
        if (::fdatasync(segment.ack_fd.get()) != 0) rc = errno;
    }
    // A lost ack costs a duplicate after a restart, never a lost batch.
    if (rc != 0) note_write_error_locked(rc, "writing an ack");
    segment.ack_dirty = true;
    --segment.live;
    if (segment.live == 0 && seq != active_seq_) {
        delete_segment_locked(seq, false);
    } else if (segment.live == 0 && write_failing_.load(std::memory_order_relaxed)) {
        // Writes are failing (the disk is full?) and the active segment holds nothing unsent:
        // free it now, so the space is back before the next batch arrives.
        reclaim_acked_active_locked();
    }
    space_cv_.notify_all();
}

void Spool::Impl::ack(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    if (memory_inflight_.erase(id) > 0) {
        bump(stats_.batches_acked);
        return;
    }
    auto it = entries_.find(id);
    // Not found: drop_oldest deleted its segment while the sender held it; nothing to do.
    if (it == entries_.end()) return;
    CEFD_ASSERT(it->second.in_flight);
    ack_locked(id);
    bump(stats_.batches_acked);
}

void Spool::Impl::release(SpooledBatch&& batch) {
    Lock lock(mutex_);
    if (auto copy = memory_inflight_.find(batch.id); copy != memory_inflight_.end()) {
        memory_inflight_.erase(copy);
        // The sender could not deliver it: keep it on disk from now on. If the disk cannot take
        // it, it waits in memory again (it was already counted against the memory bound).
        const StoreOptions options{.attempts = batch.attempts + 1, .may_block = false, .count_drop = false};
        if (store_locked(lock, batch.id, batch.batch, options)) {
            bump(stats_.batches_spilled);
        } else {
            const auto at = std::lower_bound(
                memory_ready_.begin(), memory_ready_.end(), batch.id,
                [](const MemoryBatch& item, std::uint64_t id) { return item.id < id; });
            memory_ready_.insert(at, MemoryBatch{.id = batch.id, .attempts = batch.attempts + 1,
                                                 .batch = std::move(batch.batch)});
        }
        ready_cv_.notify_one();
        return;
    }
    auto it = entries_.find(batch.id);
    if (it == entries_.end()) {
        // drop_oldest deleted its segment while the sender held it.
        count_drop_locked(Drop::oldest, batch.batch.rows);
        return;
    }
    CEFD_ASSERT(it->second.in_flight);
    it->second.in_flight = false;
    it->second.attempts = batch.attempts + 1;
    ready_.insert(batch.id);
    ready_cv_.notify_one();
}


}  // namespace cefd
