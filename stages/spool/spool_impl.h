// stages/spool/spool_impl.h: Spool::Impl, the spool's state and the functions that change it.
// Private to stages/spool (others include spool.h). The implementation is split by concern:
//   recovery.cpp    Spool::open(): listing the directory, reading segments and ack logs back
//   segments.cpp    file names and file I/O helpers; starting, deleting, quarantining segments
//   write_path.cpp  accept(): limits, when_full, appending records, disk errors, drop counting
//   read_path.cpp   next(), ack(), release(): the sender's side
//   spool.cpp       the facade: config validation, Spool's methods, metrics, fsync thread, shutdown
// Every member function whose name ends in _locked runs with mutex_ held.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/unique_fd.h"
#include "stages/spool/record.h"
#include "stages/spool/spool.h"

namespace cefd {
namespace spool {

/// Log lines about a recurring condition appear at most once per this many seconds.
inline constexpr int log_every_s = 10;

/// 7, "seg" -> "00000000000000000007.seg".
std::string file_name(std::uint64_t seq, const char* extension);
/// The largest segment number a file name may carry (far beyond any spool's lifetime, and the
/// next one still fits in 64 bits).
inline constexpr std::uint64_t seq_max = (1ULL << 63) - 1;
/// "00000000000000000007.seg" -> 7, is_ack false. False for any other name, and for numbers
/// that are 0, above seq_max or beyond 64 bits (never read modulo 2^64).
bool parse_file_name(std::string_view name, std::uint64_t& seq, bool& is_ack);
/// Reads exactly `size` bytes at `offset`. False on error or end of file (errno 0 then).
bool read_exact_at(int fd, void* out, std::size_t size, std::uint64_t offset);
/// Writes header and body at `offset` (pwritev, retried on short writes). Returns 0 or errno.
int write_record_at(int fd, const HeaderBytes& header, std::span<const std::byte> body,
                    std::uint64_t offset);
/// write() all of `data`, retried on short writes. Returns 0 or errno.
int write_all(int fd, const void* data, std::size_t size);
/// mkdir -p with mode 0700 for every directory it creates. Returns 0 or errno.
int make_directories(const std::string& path);

}  // namespace spool

// The spool's own files only: these names are used unqualified throughout the implementation.
using spool::AckBytes;
using spool::HeaderBytes;
using spool::RecordHeader;
using spool::ack_entry_bytes;
using spool::header_bytes;
using spool::log_every_s;
using spool::file_name;
using spool::make_directories;
using spool::parse_file_name;
using spool::read_exact_at;
using spool::write_all;
using spool::write_record_at;

class Spool::Impl {
public:
    explicit Impl(const SpoolConfig& config) : config_(config) {}
    ~Impl();
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    Status open();
    bool accept(SealedBatch&& batch);
    std::optional<SpooledBatch> next(std::int64_t timeout_ns);
    void ack(std::uint64_t id);
    void release(SpooledBatch&& batch);
    std::size_t pending() const {
        std::lock_guard lock(mutex_);
        return entries_.size() + memory_ready_.size() + memory_inflight_.size();
    }
    std::uint64_t bytes() const {
        std::lock_guard lock(mutex_);
        return disk_bytes_;
    }
    std::size_t unreadable_segments() const {
        std::lock_guard lock(mutex_);
        return unreadable_.size();
    }

    SpoolStats stats_;
    std::atomic<bool> write_failing_{false};
    // Set by a failed background or rotation fdatasync; cleared only by a later fdatasync that
    // succeeds. A successful write into the page cache proves nothing about the disk.
    std::atomic<bool> sync_failing_{false};
    bool failing() const noexcept {
        return write_failing_.load(std::memory_order_relaxed) || sync_failing_.load(std::memory_order_relaxed);
    }

private:
    struct Segment {
        std::uint64_t seq = 0;
        UniqueFd fd;
        UniqueFd ack_fd;
        std::uint64_t bytes = 0;         // valid bytes: the next record goes here
        std::vector<std::uint64_t> ids;  // every record written to it
        std::uint32_t live = 0;          // records not acknowledged
        bool ack_dirty = false;          // acks written since the last fdatasync
        bool closed_for_appends = false; // a failed write left junk past `bytes`
        bool quarantined = false;        // already copied to corrupt/ (once per segment)
    };
    struct Entry {
        std::uint64_t seq = 0;     // segment
        std::uint64_t offset = 0;  // of the header in the segment
        RecordHeader header;
        std::uint32_t attempts = 0;
        bool in_flight = false;
        bool replayed = false;
        bool replay_counted = false;
        // mode always: the body as written, until next() hands it out (handoff_batches). Only
        // records in ready_ hold one, so at most handoff_batches bodies are kept.
        std::vector<std::byte> body;
    };
    enum class Drop : std::uint8_t { oldest, newest, block_timeout, too_large, write_error, damaged };

    using Lock = std::unique_lock<std::mutex>;

    // How store_locked() may treat a batch it cannot store.
    struct StoreOptions {
        std::uint32_t attempts = 0;
        bool replayed = false;
        bool may_block = true;          // when_full = block may wait (not on the sender thread)
        bool count_drop = true;         // false: the caller keeps the batch
        bool ignore_max_bytes = false;  // recovery copies what it found, whatever the limit
    };

    bool store_locked(Lock& lock, std::uint64_t id, const SealedBatch& batch,
                      const StoreOptions& options);
    int append_locked(std::uint64_t id, const SealedBatch& batch, const StoreOptions& options);
    int append_to_active_locked(std::uint64_t id, const RecordHeader& header,
                                std::span<const std::byte> body, const StoreOptions& options);
    int append_record_locked(Segment& segment, std::uint64_t id, const RecordHeader& header,
                             std::span<const std::byte> body, const StoreOptions& options);
    Status open_new_segment_locked();
    bool reclaim_acked_active_locked();
    bool drop_oldest_segment_locked();
    void delete_segment_locked(std::uint64_t seq, bool count_drops);
    void ack_locked(std::uint64_t id);
    bool read_body_locked(std::uint64_t id, const Entry& entry, Segment& segment, std::vector<std::byte>& body);
    /// Counts `batches` dropped batches holding `rows` rows, then logs (at most every 10 s).
    void count_drop_locked(Drop reason, std::uint64_t rows, std::uint64_t batches = 1);
    void note_write_error_locked(int error, const char* what);
    /// A failed fdatasync whose data was already in place (of a segment or ack log; with
    /// `directory`, the fsync of the directory): counted and logged like a write error, and
    /// spool_write_failing stays 1 until the interval thread's sync covers it.
    void note_sync_error_locked(int error, const char* what, bool directory = false);
    void quarantine_copy_locked(Segment& segment);
    void trim_corrupt_locked();
    void sync_dir_locked();
    /// fsync of the directory: 0, or its errno; keeps dir_dirty_ (set on failure, cleared on success).
    int fsync_dir_locked();
    /// Gives a newly created file (fd) or directory (path) to adopt_owner_, if set.
    void adopt(int fd) const;
    void adopt(const std::string& path) const;
    void fsync_loop(std::stop_token stop);
    void spill_memory_locked(Lock& lock);
    /// Raises the id floor above `id` (writes and syncs IDS). Called before `id` is used.
    void reserve_ids_locked(std::uint64_t id);

    // Recovery.
    void set_aside_unknown_files(const std::vector<std::string>& names);
    std::optional<std::uint64_t> read_id_floor();
    void note_unreadable_segment(std::uint64_t seq, int error);
    void recover_segment(std::uint64_t seq);
    std::vector<std::uint64_t> read_ack_log(std::uint64_t seq, bool& ok);
    std::optional<std::uint64_t> resync(int fd, std::uint64_t from, std::uint64_t size);

    Segment& active() { return segments_.at(active_seq_); }
    std::string path(const std::string& name) const { return config_.dir + "/" + name; }

    const SpoolConfig config_;
    mutable std::mutex mutex_;
    std::condition_variable ready_cv_;      // next() waits for a batch
    std::condition_variable space_cv_;      // accept() with when_full = block waits for room
    std::condition_variable_any fsync_cv_;  // wakes the interval fsync thread to stop

    std::map<std::uint64_t, Segment> segments_;       // by sequence number; the last is active
    std::unordered_map<std::uint64_t, Entry> entries_;  // unacknowledged records on disk, by id
    std::set<std::uint64_t> ready_;                    // on disk, not handed out; oldest first
    struct MemoryBatch {
        std::uint64_t id = 0;
        std::uint32_t attempts = 0;
        SealedBatch batch;
    };
    std::deque<MemoryBatch> memory_ready_;  // mode overflow; ordered by id
    std::unordered_map<std::uint64_t, SealedBatch> memory_inflight_;  // copies the sender holds
    std::uint64_t next_id_ = 1;
    std::uint64_t id_floor_ = 0;            // written to IDS: ids below it may be in use
    std::set<std::uint64_t> unreadable_;    // segments open() could not open: never touched
    std::uint64_t unreadable_bytes_ = 0;
    std::uint64_t next_seq_ = 1;
    std::uint64_t active_seq_ = 0;
    std::uint64_t disk_bytes_ = 0;
    bool active_dirty_ = false;
    bool dir_dirty_ = false;  // the last fsync of the directory failed: retried (sync_dir_locked)
    bool data_unsynced_ = false;        // a file's fdatasync failed; a later good one clears it
    std::uint64_t sync_errors_seen_ = 0;  // failed syncs so far: a pass clears the alarm only if none came meanwhile
    UniqueFd dir_fd_;
    // Set when root opens a directory another user owns (`cefd replay-dead-letter` or `cefd check`
    // run with sudo): every file and directory created is handed to that owner, so the service
    // can still read what root wrote.
    std::optional<std::pair<uid_t, gid_t>> adopt_owner_;
    UniqueFd lock_fd_;
    UniqueFd ids_fd_;                 // IDS, rewritten in place
    std::vector<std::byte> scratch_;  // recovery: one body at a time
    std::jthread fsync_thread_;       // last member: stopped and joined first
};

}  // namespace cefd
