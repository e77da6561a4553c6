// stages/spool/spool.cpp: the spool. The format and recovery rules are in record.h; the
// threading and memory rules in spool.h; limits and fsync guarantees in README.md.
#include "stages/spool/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <stop_token>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "engine/clock.h"
#include "engine/log.h"
#include "engine/unique_fd.h"
#include "stages/spool/record.h"

namespace cefd {
namespace {

using spool::AckBytes;
using spool::HeaderBytes;
using spool::RecordHeader;
using spool::ack_entry_bytes;
using spool::header_bytes;

constexpr int log_every_s = 10;

std::string file_name(std::uint64_t seq, const char* extension) {
    char name[40];
    std::snprintf(name, sizeof name, "%020llu.%s", static_cast<unsigned long long>(seq), extension);
    return name;
}

/// "00000000000000000007.seg" -> 7, is_ack false. False for any other name.
bool parse_file_name(std::string_view name, std::uint64_t& seq, bool& is_ack) {
    if (name.size() != 24 || name[20] != '.') return false;
    const std::string_view extension = name.substr(21);
    if (extension != "seg" && extension != "ack") return false;
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < 20; ++i) {
        if (name[i] < '0' || name[i] > '9') return false;
        value = value * 10 + static_cast<std::uint64_t>(name[i] - '0');
    }
    seq = value;
    is_ack = extension == "ack";
    return true;
}

/// Reads exactly `size` bytes at `offset`. False on error or end of file (errno 0 then).
bool read_exact_at(int fd, void* out, std::size_t size, std::uint64_t offset) {
    auto* p = static_cast<char*>(out);
    while (size > 0) {
        const ssize_t n = ::pread(fd, p, size, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) errno = 0;
            return false;
        }
        p += n;
        size -= static_cast<std::size_t>(n);
        offset += static_cast<std::uint64_t>(n);
    }
    return true;
}

/// Writes header and body at `offset` (pwritev, retried on short writes). Returns 0 or errno.
int write_record_at(int fd, const HeaderBytes& header, std::span<const std::byte> body,
                    std::uint64_t offset) {
    std::size_t done = 0;
    const std::size_t total = header.size() + body.size();
    // Bounded: each pass writes at least one byte or returns.
    while (done < total) {
        iovec iov[2];
        int count = 0;
        if (done < header.size()) {
            iov[count++] = {const_cast<std::byte*>(header.data()) + done, header.size() - done};
            if (!body.empty()) iov[count++] = {const_cast<std::byte*>(body.data()), body.size()};
        } else {
            const std::size_t at = done - header.size();
            iov[count++] = {const_cast<std::byte*>(body.data()) + at, body.size() - at};
        }
        const ssize_t n = ::pwritev(fd, iov, count, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        if (n == 0) return EIO;
        done += static_cast<std::size_t>(n);
    }
    return 0;
}

int write_all(int fd, const void* data, std::size_t size) {
    const auto* p = static_cast<const char*>(data);
    while (size > 0) {
        const ssize_t n = ::write(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        if (n == 0) return EIO;
        p += n;
        size -= static_cast<std::size_t>(n);
    }
    return 0;
}

/// mkdir -p with mode 0700 for every directory it creates.
int make_directories(const std::string& path) {
    std::string partial;
    std::size_t start = 0;
    while (start <= path.size()) {
        std::size_t slash = path.find('/', start);
        if (slash == std::string::npos) slash = path.size();
        partial = path.substr(0, slash);
        start = slash + 1;
        if (partial.empty()) continue;
        if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) return errno;
    }
    return 0;
}

}  // namespace

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

    SpoolStats stats_;
    std::atomic<bool> write_failing_{false};

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
    };
    struct Entry {
        std::uint64_t seq = 0;     // segment
        std::uint64_t offset = 0;  // of the header in the segment
        RecordHeader header;
        std::uint32_t attempts = 0;
        bool in_flight = false;
        bool replayed = false;
        bool replay_counted = false;
    };
    enum class Drop : std::uint8_t { oldest, newest, block_timeout, too_large, write_error };

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
    bool drop_oldest_segment_locked();
    void delete_segment_locked(std::uint64_t seq, bool count_drops);
    void ack_locked(std::uint64_t id);
    void count_drop_locked(Drop reason, std::uint32_t rows);
    void note_write_error_locked(int error, const char* what);
    void quarantine_copy_locked(const Segment& segment);
    void trim_corrupt_locked();
    void sync_dir_locked();
    void fsync_loop(std::stop_token stop);
    void spill_memory_locked(Lock& lock);

    // Recovery.
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
    std::uint64_t next_seq_ = 1;
    std::uint64_t active_seq_ = 0;
    std::uint64_t disk_bytes_ = 0;
    bool active_dirty_ = false;
    UniqueFd dir_fd_;
    UniqueFd lock_fd_;
    std::vector<std::byte> scratch_;  // recovery: one body at a time
    std::jthread fsync_thread_;       // last member: stopped and joined first
};

// ---------------------------------------------------------------------------------------------
// Open and recovery

Status Spool::Impl::open() {
    ConfigErrors errors;
    config_.validate(errors);
    if (!errors.empty()) return Error{Errc::config, errors.list().front()};

    if (const int rc = make_directories(config_.dir); rc != 0)
        return Error{Errc::io, rc, "spool: cannot create " + config_.dir};
    dir_fd_ = UniqueFd(::open(config_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir_fd_.valid()) return Error{Errc::io, errno, "spool: cannot open " + config_.dir};
    lock_fd_ = UniqueFd(::open(path("LOCK").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock_fd_.valid()) return Error{Errc::io, errno, "spool: cannot create " + path("LOCK")};
    if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
        // EWOULDBLOCK: another cefd (or a stale one still stopping) uses this directory.
        return Error{Errc::io, errno, "spool: " + config_.dir + " is in use by another process"};
    }
    if (::mkdir(path("corrupt").c_str(), 0700) != 0 && errno != EEXIST)
        return Error{Errc::io, errno, "spool: cannot create " + path("corrupt")};

    std::set<std::uint64_t> segment_seqs;
    std::set<std::uint64_t> ack_seqs;
    {
        DIR* dir = ::opendir(config_.dir.c_str());
        if (dir == nullptr) return Error{Errc::io, errno, "spool: cannot list " + config_.dir};
        while (const dirent* entry = ::readdir(dir)) {
            const std::string_view name = entry->d_name;
            if (name == "." || name == ".." || name == "LOCK" || name == "corrupt") continue;
            std::uint64_t seq = 0;
            bool is_ack = false;
            if (parse_file_name(name, seq, is_ack)) {
                (is_ack ? ack_seqs : segment_seqs).insert(seq);
            } else {
                CEFD_LOG(warn, "spool: ignoring unknown file %s/%s", config_.dir.c_str(),
                         entry->d_name);
            }
        }
        ::closedir(dir);
    }
    for (const std::uint64_t seq : ack_seqs) {
        if (!segment_seqs.contains(seq)) {
            // A crash between unlinking a segment and its ack log: nothing to keep.
            ::unlink(path(file_name(seq, "ack")).c_str());
        }
    }
    if (!segment_seqs.empty()) next_seq_ = *segment_seqs.rbegin() + 1;
    if (!ack_seqs.empty()) next_seq_ = std::max(next_seq_, *ack_seqs.rbegin() + 1);

    // The new active segment first, so that records copied out of damaged segments have a home.
    {
        std::lock_guard lock(mutex_);
        if (Status st = open_new_segment_locked(); !st) return st;
    }
    for (const std::uint64_t seq : segment_seqs) recover_segment(seq);

    std::lock_guard lock(mutex_);
    sync_dir_locked();
    trim_corrupt_locked();
    if (!entries_.empty()) {
        CEFD_LOG(info, "spool: recovered %zu unacknowledged batches (%llu bytes) from %s",
                 entries_.size(), static_cast<unsigned long long>(disk_bytes_),
                 config_.dir.c_str());
    }
    scratch_ = {};
    if (config_.fsync == SpoolConfig::Fsync::interval)
        fsync_thread_ = std::jthread([this](std::stop_token stop) { fsync_loop(stop); });
    return ok_status();
}

std::vector<std::uint64_t> Spool::Impl::read_ack_log(std::uint64_t seq, bool& ok) {
    ok = true;
    std::vector<std::uint64_t> acked;
    const std::string name = path(file_name(seq, "ack"));
    UniqueFd fd(::open(name.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
        ok = false;
        return acked;
    }
    struct stat st{};
    ::fstat(fd.get(), &st);
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size % ack_entry_bytes != 0) ok = false;  // a torn last entry
    // Bounded by the file size; each entry is read in one small pread.
    for (std::uint64_t offset = 0; offset + ack_entry_bytes <= size; offset += ack_entry_bytes) {
        AckBytes entry;
        if (!read_exact_at(fd.get(), entry.data(), entry.size(), offset)) {
            ok = false;
            break;
        }
        if (const auto id = spool::decode_ack(entry)) {
            acked.push_back(*id);
        } else {
            ok = false;
        }
    }
    return acked;
}

std::optional<std::uint64_t> Spool::Impl::resync(int fd, std::uint64_t from, std::uint64_t size) {
    constexpr std::size_t chunk = 1 << 20;
    std::vector<std::byte> buffer(chunk + header_bytes);
    // Bounded: `at` moves forward by at least one chunk per pass until the end of the file.
    for (std::uint64_t at = from; at + header_bytes <= size; at += chunk) {
        const std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(chunk + header_bytes, size - at));
        if (!read_exact_at(fd, buffer.data(), want, at)) return std::nullopt;
        for (std::size_t i = 0; i + header_bytes <= want && i < chunk; ++i) {
            if (std::to_integer<std::uint8_t>(buffer[i]) != (spool::record_magic & 0xffU)) continue;
            const auto header =
                spool::decode_header(std::span<const std::byte, header_bytes>(buffer.data() + i, header_bytes));
            if (header && at + i + header_bytes + header->body_bytes <= size) return at + i;
        }
    }
    return std::nullopt;
}

void Spool::Impl::recover_segment(std::uint64_t seq) {
    const std::string segment_path = path(file_name(seq, "seg"));
    const std::string ack_path = path(file_name(seq, "ack"));
    UniqueFd fd(::open(segment_path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd.valid()) {
        CEFD_LOG(error, "spool: cannot open %s (errno %d); leaving it", segment_path.c_str(), errno);
        return;
    }
    struct stat st{};
    ::fstat(fd.get(), &st);
    const auto size = static_cast<std::uint64_t>(st.st_size);

    bool ack_ok = true;
    const std::vector<std::uint64_t> acked_list = read_ack_log(seq, ack_ok);
    const std::unordered_set<std::uint64_t> acked(acked_list.begin(), acked_list.end());
    for (const std::uint64_t id : acked_list) next_id_ = std::max(next_id_, id + 1);

    struct Found {
        std::uint64_t offset;
        RecordHeader header;
    };
    std::vector<Found> found;
    std::uint32_t damaged_regions = 0;
    std::uint64_t offset = 0;
    // Bounded: every pass moves `offset` forward or ends the loop.
    while (offset < size) {
        HeaderBytes bytes;
        if (size - offset >= header_bytes && read_exact_at(fd.get(), bytes.data(), bytes.size(), offset)) {
            const auto header = spool::decode_header(bytes);
            if (header && offset + header_bytes + header->body_bytes <= size) {
                found.push_back({offset, *header});
                offset += header_bytes + header->body_bytes;
                continue;
            }
        }
        ++damaged_regions;
        const auto next = resync(fd.get(), offset + 1, size);
        if (!next) break;
        offset = *next;
    }
    for (const Found& f : found) next_id_ = std::max(next_id_, f.header.id + 1);

    std::lock_guard lock(mutex_);
    if (!ack_ok) {
        bump(stats_.corrupt_acks);
        CEFD_LOG(warn, "spool: ack log %s is missing or damaged; its batches may be sent twice",
                 ack_path.c_str());
    }
    if (damaged_regions > 0) {
        bump(stats_.corrupt_records, damaged_regions);
        CEFD_LOG(error,
                 "spool: %s has %u damaged region(s) (torn write, bad checksum or junk); "
                 "copying its good batches and moving it to corrupt/",
                 segment_path.c_str(), damaged_regions);
        // Copy every good unacknowledged record into the active segment, then move the damaged
        // file aside. A crash in between leaves both; the duplicate ids are skipped next time.
        bool copied_all = true;
        for (const Found& f : found) {
            if (acked.contains(f.header.id) || entries_.contains(f.header.id)) continue;
            scratch_.resize(f.header.body_bytes);
            const bool read_ok = read_exact_at(fd.get(), scratch_.data(), scratch_.size(),
                                               f.offset + header_bytes);
            if (!read_ok || spool::crc32c(scratch_) != f.header.body_crc32c) {
                bump(stats_.corrupt_records);
                continue;
            }
            const StoreOptions options{.replayed = true, .ignore_max_bytes = true};
            if (const int rc = append_to_active_locked(f.header.id, f.header, scratch_, options);
                rc != 0) {
                note_write_error_locked(rc, "copying a batch out of a damaged segment");
                copied_all = false;
                break;
            }
        }
        if (config_.fsync != SpoolConfig::Fsync::never) ::fdatasync(active().fd.get());
        if (!copied_all) {
            // The disk cannot take the copies (full?): deliver the rest from the damaged file
            // in place; the damage is then found (and counted) again at the next start.
            damaged_regions = 0;
        }
    }
    if (damaged_regions > 0) {
        const std::string aside =
            path("corrupt/" + std::to_string(wall_clock_ns()) + "-" + file_name(seq, "seg"));
        if (::rename(segment_path.c_str(), aside.c_str()) != 0) ::unlink(segment_path.c_str());
        ::unlink(ack_path.c_str());
        return;
    }

    Segment segment;
    segment.seq = seq;
    segment.bytes = size;
    segment.fd = std::move(fd);
    for (const Found& f : found) {
        if (acked.contains(f.header.id) || entries_.contains(f.header.id)) continue;
        segment.ids.push_back(f.header.id);
        ++segment.live;
        Entry entry{.seq = seq, .offset = f.offset, .header = f.header, .replayed = true};
        entries_.emplace(f.header.id, entry);
        ready_.insert(f.header.id);
    }
    if (segment.live == 0) {
        ::unlink(segment_path.c_str());
        ::unlink(ack_path.c_str());
        return;
    }
    if (!ack_ok) {
        // Keep the damaged log for inspection and start a clean one holding its good entries.
        const std::string aside =
            path("corrupt/" + std::to_string(wall_clock_ns()) + "-" + file_name(seq, "ack"));
        ::rename(ack_path.c_str(), aside.c_str());
        const std::string temporary = ack_path + ".tmp";
        UniqueFd out(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        bool written = out.valid();
        for (const std::uint64_t id : acked_list) {
            const AckBytes entry = spool::encode_ack(id);
            if (written && write_all(out.get(), entry.data(), entry.size()) != 0) written = false;
        }
        if (written && ::fdatasync(out.get()) == 0) ::rename(temporary.c_str(), ack_path.c_str());
        else ::unlink(temporary.c_str());
    }
    segment.ack_fd = UniqueFd(::open(ack_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!segment.ack_fd.valid())
        CEFD_LOG(error, "spool: cannot open %s (errno %d)", ack_path.c_str(), errno);
    disk_bytes_ += size;
    segments_.emplace(seq, std::move(segment));
}

// ---------------------------------------------------------------------------------------------
// Segments

Status Spool::Impl::open_new_segment_locked() {
    const std::uint64_t seq = next_seq_;
    // The ack log first: a segment without one is then always damage, never a normal crash.
    const std::string ack_path = path(file_name(seq, "ack"));
    const std::string segment_path = path(file_name(seq, "seg"));
    UniqueFd ack_fd(::open(ack_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600));
    if (!ack_fd.valid()) return Error{Errc::io, errno, "spool: cannot create " + ack_path};
    UniqueFd fd(::open(segment_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) {
        const int error = errno;
        ::unlink(ack_path.c_str());
        return Error{Errc::io, error, "spool: cannot create " + segment_path};
    }
    ++next_seq_;
    const std::uint64_t previous = active_seq_;
    if (previous != 0 && segments_.contains(previous)) {
        Segment& old = segments_.at(previous);
        if (active_dirty_ && config_.fsync != SpoolConfig::Fsync::never) ::fdatasync(old.fd.get());
    }
    active_dirty_ = false;
    Segment segment;
    segment.seq = seq;
    segment.fd = std::move(fd);
    segment.ack_fd = std::move(ack_fd);
    segments_.emplace(seq, std::move(segment));
    active_seq_ = seq;
    sync_dir_locked();
    if (previous != 0 && segments_.contains(previous) && segments_.at(previous).live == 0)
        delete_segment_locked(previous, false);
    return ok_status();
}

void Spool::Impl::delete_segment_locked(std::uint64_t seq, bool count_drops) {
    auto it = segments_.find(seq);
    if (it == segments_.end()) return;
    Segment& segment = it->second;
    for (const std::uint64_t id : segment.ids) {
        auto entry = entries_.find(id);
        if (entry == entries_.end() || entry->second.seq != seq) continue;
        // An entry the sender holds is forgotten too: its ack is then ignored, and a release()
        // counts it as dropped_oldest (see release()).
        if (count_drops && !entry->second.in_flight) count_drop_locked(Drop::oldest, entry->second.header.rows);
        ready_.erase(id);
        entries_.erase(entry);
    }
    disk_bytes_ -= segment.bytes;
    segments_.erase(it);
    // The segment first: an ack log without its segment is cleaned up at open; a segment
    // without its ack log would be replayed whole.
    ::unlink(path(file_name(seq, "seg")).c_str());
    ::unlink(path(file_name(seq, "ack")).c_str());
    space_cv_.notify_all();
}

bool Spool::Impl::drop_oldest_segment_locked() {
    if (segments_.size() > 1) {
        const std::uint64_t seq = segments_.begin()->first;
        CEFD_LOG_EVERY(log_every_s, warn, "spool: full; deleting the oldest segment %llu unsent",
                       static_cast<unsigned long long>(seq));
        delete_segment_locked(seq, true);
        return true;
    }
    if (active().bytes == 0) return false;
    // Only the active segment is left: start a new one, then drop the old.
    const std::uint64_t seq = active_seq_;
    if (Status st = open_new_segment_locked(); !st) {
        note_write_error_locked(st.error().sys, "starting a new segment");
        return false;
    }
    CEFD_LOG_EVERY(log_every_s, warn, "spool: full; deleting the oldest segment %llu unsent",
                   static_cast<unsigned long long>(seq));
    delete_segment_locked(seq, true);
    return true;
}

void Spool::Impl::sync_dir_locked() {
    // A new or removed file survives a power cut only once its directory is synced.
    if (config_.fsync != SpoolConfig::Fsync::never) ::fsync(dir_fd_.get());
}

void Spool::Impl::quarantine_copy_locked(const Segment& segment) {
    if (config_.corrupt_files_max == 0) return;
    const std::string aside =
        path("corrupt/" + std::to_string(wall_clock_ns()) + "-" + file_name(segment.seq, "seg"));
    UniqueFd out(::open(aside.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!out.valid()) return;
    loff_t in_offset = 0;
    std::uint64_t left = segment.bytes;
    // Bounded: each pass copies at least one byte or stops.
    while (left > 0) {
        const ssize_t n = ::copy_file_range(segment.fd.get(), &in_offset, out.get(), nullptr, left, 0);
        if (n <= 0) break;
        left -= static_cast<std::uint64_t>(n);
    }
    trim_corrupt_locked();
}

void Spool::Impl::trim_corrupt_locked() {
    std::vector<std::string> names;
    DIR* dir = ::opendir(path("corrupt").c_str());
    if (dir == nullptr) return;
    while (const dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] != '.') names.emplace_back(entry->d_name);
    }
    ::closedir(dir);
    if (names.size() <= config_.corrupt_files_max) return;
    // Names start with the wall-clock time they were set aside, so sorting is by age.
    std::sort(names.begin(), names.end());
    const std::size_t remove = names.size() - config_.corrupt_files_max;
    for (std::size_t i = 0; i < remove; ++i) ::unlink(path("corrupt/" + names[i]).c_str());
    CEFD_LOG(warn, "spool: removed %zu old file(s) from %s/corrupt (corrupt_files_max)", remove,
             config_.dir.c_str());
}

// ---------------------------------------------------------------------------------------------
// Writing

void Spool::Impl::count_drop_locked(Drop reason, std::uint32_t rows) {
    bump(stats_.dropped_batches);
    bump(stats_.dropped_rows, rows);
    const char* name = "";
    switch (reason) {
        case Drop::oldest: bump(stats_.dropped_oldest); name = "when_full = drop_oldest"; break;
        case Drop::newest: bump(stats_.dropped_newest); name = "when_full = drop_newest"; break;
        case Drop::block_timeout:
            bump(stats_.dropped_block_timeout);
            name = "when_full = block, waited block_timeout_ms";
            break;
        case Drop::too_large: bump(stats_.dropped_too_large); name = "batch larger than the spool"; break;
        case Drop::write_error: bump(stats_.dropped_write_error); name = "write error"; break;
    }
    CEFD_LOG_EVERY(log_every_s, warn, "spool: dropped a batch of %u rows (%s); %llu batches so far",
                   rows, name, static_cast<unsigned long long>(read(stats_.dropped_batches)));
}

void Spool::Impl::note_write_error_locked(int error, const char* what) {
    bump(stats_.write_errors);
    write_failing_.store(true, std::memory_order_relaxed);
    switch (error) {
        case ENOSPC:  // the file system is full (other files, or max_bytes above the free space)
        case EDQUOT:  // the cefd user's disk quota
            CEFD_LOG_EVERY(log_every_s, error, "spool: disk full in %s while %s", config_.dir.c_str(), what);
            break;
        case EIO:  // the device reported an error: check dmesg
            CEFD_LOG_EVERY(log_every_s, error, "spool: I/O error in %s while %s", config_.dir.c_str(), what);
            break;
        default:
            CEFD_LOG_EVERY(log_every_s, error, "spool: unexpected errno %d (%s) in %s while %s", error,
                           std::strerror(error), config_.dir.c_str(), what);
    }
}

int Spool::Impl::append_record_locked(Segment& segment, std::uint64_t id, const RecordHeader& header,
                                      std::span<const std::byte> body, const StoreOptions& options) {
    const HeaderBytes bytes = spool::encode_header(header);
    int rc = write_record_at(segment.fd.get(), bytes, body, segment.bytes);
    if (rc == 0 && config_.fsync == SpoolConfig::Fsync::batch) {
        add(stats_.fsyncs);
        if (::fdatasync(segment.fd.get()) != 0) rc = errno;
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
        if (Status st = open_new_segment_locked(); !st) return st.error().sys != 0 ? st.error().sys : EIO;
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
    // Bounded: drop_oldest removes a segment per pass (finitely many), block ends at the
    // deadline, drop_newest returns at once.
    for (;;) {
        if (!options.ignore_max_bytes && disk_bytes_ + record_bytes > config_.max_bytes) {
            if (config_.when_full == SpoolConfig::WhenFull::drop_oldest) {
                if (drop_oldest_segment_locked()) continue;
                return refuse(Drop::too_large);
            }
            if (!may_block) return refuse(Drop::newest);
            if (space_cv_.wait_until(lock, deadline) == std::cv_status::timeout &&
                disk_bytes_ + record_bytes > config_.max_bytes)
                return refuse(Drop::block_timeout);
            continue;
        }
        const int rc = append_locked(id, batch, options);
        if (rc == 0) {
            if (write_failing_.exchange(false, std::memory_order_relaxed))
                CEFD_LOG(info, "spool: writes to %s succeed again", config_.dir.c_str());
            ready_cv_.notify_one();
            return true;
        }
        note_write_error_locked(rc, "writing a batch");
        if (config_.when_full == SpoolConfig::WhenFull::drop_oldest) {
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

bool Spool::Impl::accept(SealedBatch&& batch) {
    Lock lock(mutex_);
    const std::uint64_t id = next_id_++;
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
    return store_locked(lock, id, batch, StoreOptions{});
}

// ---------------------------------------------------------------------------------------------
// The sender's side

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
        out.batch.body.resize(entry.header.body_bytes);
        const bool read_ok = read_exact_at(segment.fd.get(), out.batch.body.data(),
                                           out.batch.body.size(), entry.offset + header_bytes);
        if (!read_ok || spool::crc32c(out.batch.body) != entry.header.body_crc32c) {
            if (!read_ok) bump(stats_.read_errors);
            bump(stats_.corrupt_records);
            CEFD_LOG_EVERY(log_every_s, error,
                           "spool: batch %llu in segment %llu is damaged (%s); skipped, segment "
                           "copied to corrupt/",
                           static_cast<unsigned long long>(id), static_cast<unsigned long long>(entry.seq),
                           read_ok ? "bad checksum" : std::strerror(errno));
            quarantine_copy_locked(segment);
            ack_locked(id);
            continue;
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
    if (segment.live == 0 && seq != active_seq_) delete_segment_locked(seq, false);
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

// ---------------------------------------------------------------------------------------------
// fsync and shutdown

void Spool::Impl::fsync_loop(std::stop_token stop) {
    const auto interval = std::chrono::milliseconds(config_.fsync_interval_ms);
    // Bounded: ends when stop is requested (the destructor).
    while (!stop.stop_requested()) {
        std::vector<int> fds;
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
        }
        for (const int fd : fds) {
            if (fd < 0) continue;
            add(stats_.fsyncs);
            if (::fdatasync(fd) != 0) {
                const int error = errno;
                std::lock_guard lock(mutex_);
                note_write_error_locked(error, "fsyncing");
            }
            ::close(fd);
        }
    }
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

Spool::Impl::~Impl() {
    if (fsync_thread_.joinable()) {
        fsync_thread_.request_stop();
        fsync_thread_.join();
    }
    if (!dir_fd_.valid() || active_seq_ == 0) return;  // open() failed early
    Lock lock(mutex_);
    spill_memory_locked(lock);
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

// ---------------------------------------------------------------------------------------------
// Spool

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
bool Spool::write_failing() const noexcept {
    return impl_->write_failing_.load(std::memory_order_relaxed);
}

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
        {"spool_fsyncs_total", "fdatasync calls on segments and ack logs", &s.fsyncs},
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
    registry.add_gauge("spool_write_failing", "1 while spool writes fail (disk full or I/O error)", "",
                       [impl] { return impl->write_failing_.load(std::memory_order_relaxed) ? 1.0 : 0.0; });
}

}  // namespace cefd
