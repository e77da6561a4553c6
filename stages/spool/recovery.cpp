// stages/spool/recovery.cpp: Spool::open() and recovery: locking the directory, listing its files, reading
// every segment and ack log back (the rules are at the top of record.h).
#include "stages/spool/spool_impl.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <unordered_set>

#include "engine/clock.h"
#include "engine/log.h"

namespace cefd {

Status Spool::Impl::open() {
    ConfigErrors errors;
    config_.validate(errors);
    if (!errors.empty()) return Error{Errc::config, errors.list().front()};

    if (const int rc = make_directories(config_.dir); rc != 0)
        return Error{Errc::io, rc, "spool: cannot create " + config_.dir};
    dir_fd_ = UniqueFd(::open(config_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir_fd_.valid()) return Error{Errc::io, errno, "spool: cannot open " + config_.dir};
    if (struct stat st{}; ::geteuid() == 0 && ::fstat(dir_fd_.get(), &st) == 0 && st.st_uid != 0) {
        adopt_owner_.emplace(st.st_uid, st.st_gid);
        CEFD_LOG(info, "spool: running as root in %s, which uid %u owns: files created here are given to %u:%u",
                 config_.dir.c_str(), static_cast<unsigned>(st.st_uid), static_cast<unsigned>(st.st_uid),
                 static_cast<unsigned>(st.st_gid));
    }
    lock_fd_ = UniqueFd(::open(path("LOCK").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock_fd_.valid()) return Error{Errc::io, errno, "spool: cannot create " + path("LOCK")};
    adopt(lock_fd_.get());
    if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
        // EWOULDBLOCK: another cefd (or a stale one still stopping) uses this directory.
        return Error{Errc::io, errno, "spool: " + config_.dir + " is in use by another process"};
    }
    if (::mkdir(path("corrupt").c_str(), 0700) == 0)
        adopt(path("corrupt"));
    else if (errno != EEXIST)
        return Error{Errc::io, errno, "spool: cannot create " + path("corrupt")};
    ids_fd_ = UniqueFd(::open(path("IDS").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!ids_fd_.valid()) return Error{Errc::io, errno, "spool: cannot create " + path("IDS")};
    adopt(ids_fd_.get());
    const std::optional<std::uint64_t> id_floor = read_id_floor();

    std::set<std::uint64_t> segment_seqs;
    std::set<std::uint64_t> ack_seqs;
    std::vector<std::string> unknown;
    {
        DIR* dir = ::opendir(config_.dir.c_str());
        if (dir == nullptr) return Error{Errc::io, errno, "spool: cannot list " + config_.dir};
        while (const dirent* entry = ::readdir(dir)) {
            const std::string_view name = entry->d_name;
            if (name == "." || name == ".." || name == "LOCK" || name == "IDS" || name == "corrupt") continue;
            if (name == receive_engine_file) continue;
            // The spool directory may be a file system's root; fsck owns lost+found.
            if (name == "lost+found") continue;
            std::uint64_t seq = 0;
            bool is_ack = false;
            if (parse_file_name(name, seq, is_ack)) {
                (is_ack ? ack_seqs : segment_seqs).insert(seq);
            } else {
                unknown.emplace_back(name);
            }
        }
        ::closedir(dir);
    }
    set_aside_unknown_files(unknown);
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
    if (id_floor) {
        next_id_ = std::max(next_id_, *id_floor);
    } else if (!unreadable_.empty()) {
        // The ids in an unreadable segment are unknown and no floor bounds them.
        next_id_ += spool::id_unknown_margin;
        CEFD_LOG(warn, "spool: no valid %s and %zu unreadable segment(s): new batch ids start at %llu",
                 path("IDS").c_str(), unreadable_.size(), static_cast<unsigned long long>(next_id_));
    }
    reserve_ids_locked(next_id_);
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

void Spool::Impl::set_aside_unknown_files(const std::vector<std::string>& names) {
    // Only names parse_file_name() accepts are acted on. Anything else (a number beyond 64 bits,
    // a stray or half-written file) is moved out of the way, so it can never be misread as a
    // segment, and kept for inspection.
    constexpr std::size_t named_in_log_max = 5;
    for (std::size_t i = 0; i < names.size(); ++i) {
        const std::string aside = path("corrupt/" + std::to_string(wall_clock_ns()) + "-" + names[i]);
        const bool moved = ::rename(path(names[i]).c_str(), aside.c_str()) == 0;
        if (i < named_in_log_max) {
            CEFD_LOG(warn, "spool: %s/%s is not a spool file name; %s", config_.dir.c_str(),
                     names[i].c_str(), moved ? "moved to corrupt/" : "could not move it, ignoring it");
        }
    }
    if (names.size() > named_in_log_max) {
        CEFD_LOG(warn, "spool: %zu files in %s are not spool file names (moved to corrupt/)",
                 names.size(), config_.dir.c_str());
    }
    bump(stats_.unknown_files, names.size());
}

std::optional<std::uint64_t> Spool::Impl::read_id_floor() {
    struct stat st{};
    if (::fstat(ids_fd_.get(), &st) != 0 || st.st_size == 0) return std::nullopt;  // a new spool
    spool::IdFloorBytes bytes;
    std::optional<std::uint64_t> floor;
    if (st.st_size == static_cast<off_t>(bytes.size()) &&
        read_exact_at(ids_fd_.get(), bytes.data(), bytes.size(), 0))
        floor = spool::decode_id_floor(bytes);
    if (!floor) CEFD_LOG(warn, "spool: %s is damaged; rewriting it", path("IDS").c_str());
    return floor;
}

void Spool::Impl::note_unreadable_segment(std::uint64_t seq, int error) {
    const std::string segment_path = path(file_name(seq, "seg"));
    // Its batches stay where they are: nothing here deletes, renames or renumbers it, and the id
    // floor keeps its ids from being handed out again. The next start that can read it sends them.
    struct stat st{};
    const std::uint64_t bytes = ::stat(segment_path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    bool ack_ok = true;
    for (const std::uint64_t id : read_ack_log(seq, ack_ok)) next_id_ = std::max(next_id_, id + 1);
    std::lock_guard lock(mutex_);
    unreadable_.insert(seq);
    unreadable_bytes_ += bytes;
    bump(stats_.unreadable_segments);
    switch (error) {
        case EACCES:  // its mode or owner changed (copied in by root?): cefd's user cannot read it
        case EPERM:
            CEFD_LOG(error,
                     "spool: cannot read %s (%llu bytes): %s. Its batches are kept but not sent; make it "
                     "readable and writable by cefd's user and restart",
                     segment_path.c_str(), static_cast<unsigned long long>(bytes), std::strerror(error));
            break;
        default:
            CEFD_LOG(error, "spool: cannot open %s (%llu bytes): errno %d (%s). Its batches are kept but not sent",
                     segment_path.c_str(), static_cast<unsigned long long>(bytes), error, std::strerror(error));
    }
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
    // Read-only: an old segment is only read, copied aside or deleted, never written.
    UniqueFd fd(::open(segment_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
        note_unreadable_segment(seq, errno);
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
        if (written) adopt(out.get());
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
    else
        adopt(segment.ack_fd.get());
    disk_bytes_ += size;
    segments_.emplace(seq, std::move(segment));
}


}  // namespace cefd
