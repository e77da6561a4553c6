// stages/spool/segments.cpp: segment files: their names, the file I/O helpers, starting a new active
// segment, deleting one, dropping the oldest, and copying damaged ones to corrupt/.
#include "stages/spool/spool_impl.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "engine/clock.h"
#include "engine/log.h"

namespace cefd {

namespace spool {

std::string file_name(std::uint64_t seq, const char* extension) {
    char name[40];
    std::snprintf(name, sizeof name, "%020llu.%s", static_cast<unsigned long long>(seq), extension);
    return name;
}

bool parse_file_name(std::string_view name, std::uint64_t& seq, bool& is_ack) {
    if (name.size() != 24 || name[20] != '.') return false;
    const std::string_view extension = name.substr(21);
    if (extension != "seg" && extension != "ack") return false;
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < 20; ++i) {
        if (name[i] < '0' || name[i] > '9') return false;
        const auto digit = static_cast<std::uint64_t>(name[i] - '0');
        // 20 digits reach beyond 64 bits: such a name is not one this spool wrote, and reading
        // it modulo 2^64 would name another segment.
        if (value > (seq_max - digit) / 10) return false;
        value = value * 10 + digit;
    }
    // 0 is never written (it means "no segment"); seq_max leaves room for the next one.
    if (value == 0) return false;
    seq = value;
    is_ack = extension == "ack";
    return true;
}

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

}  // namespace spool

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
    adopt(ack_fd.get());
    adopt(fd.get());
    ++next_seq_;
    const std::uint64_t previous = active_seq_;
    if (previous != 0 && segments_.contains(previous)) {
        Segment& old = segments_.at(previous);
        if (active_dirty_ && config_.fsync != SpoolConfig::Fsync::never) {
            add(stats_.fsyncs);
            if (::fdatasync(old.fd.get()) != 0) note_sync_error_locked(errno, "fsyncing a full segment");
        }
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
    std::uint64_t dropped_batches = 0;
    std::uint64_t dropped_rows = 0;
    for (const std::uint64_t id : segment.ids) {
        auto entry = entries_.find(id);
        if (entry == entries_.end() || entry->second.seq != seq) continue;
        // An entry the sender holds is forgotten too: its ack is then ignored, and a release()
        // counts it as dropped_oldest (see release()).
        if (count_drops && !entry->second.in_flight) {
            ++dropped_batches;
            dropped_rows += entry->second.header.rows;
        }
        ready_.erase(id);
        entries_.erase(entry);
    }
    // Once for the whole segment, so its log line counts all of it.
    if (dropped_batches > 0) count_drop_locked(Drop::oldest, dropped_rows, dropped_batches);
    disk_bytes_ -= segment.bytes;
    segments_.erase(it);
    // The segment first: an ack log without its segment is cleaned up at open; a segment
    // without its ack log would be replayed whole.
    ::unlink(path(file_name(seq, "seg")).c_str());
    ::unlink(path(file_name(seq, "ack")).c_str());
    space_cv_.notify_all();
}

bool Spool::Impl::reclaim_acked_active_locked() {
    // ack() never deletes the active segment when its last record is acknowledged: while the
    // sender keeps up that would replace it after every batch. So an active segment can hold
    // up to segment_bytes of records that are all done. When space is short it is the first
    // thing to free, before any policy drops a batch: without this, a disk that filled up
    // under one (64 MiB default) segment stayed full after every batch in it was delivered.
    const Segment& segment = active();
    if (segment.live != 0 || segment.bytes == 0) return false;
    // Creating two empty files needs no data blocks, so this works on a full disk; it deletes
    // the old active segment, which has no live records.
    if (Status st = open_new_segment_locked(); !st) {
        note_write_error_locked(st.error().sys, "starting a new segment");
        return false;
    }
    return true;
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

int Spool::Impl::fsync_dir_locked() {
    if (::fsync(dir_fd_.get()) == 0) {
        dir_dirty_ = false;
        return 0;
    }
    dir_dirty_ = true;
    return errno;
}

void Spool::Impl::sync_dir_locked() {
    // A new or removed file survives a power cut only once its directory is synced. A failure is
    // kept in dir_dirty_ and retried: by the interval thread (the failure stays in
    // spool_write_failing until then), or, with fsync = batch, before the next batch is stored.
    if (config_.fsync == SpoolConfig::Fsync::never) return;
    const int error = fsync_dir_locked();
    if (error == 0) return;
    if (config_.fsync == SpoolConfig::Fsync::interval) note_sync_error_locked(error, "syncing the directory", true);
    else note_write_error_locked(error, "syncing the directory");
}

void Spool::Impl::adopt(int fd) const {
    if (!adopt_owner_) return;
    if (::fchown(fd, adopt_owner_->first, adopt_owner_->second) != 0)
        CEFD_LOG_EVERY(log_every_s, error,
                       "spool: cannot give a new file in %s to uid %u (%s): the service may not read it",
                       config_.dir.c_str(), static_cast<unsigned>(adopt_owner_->first), std::strerror(errno));
}

void Spool::Impl::adopt(const std::string& name) const {
    if (!adopt_owner_) return;
    if (::chown(name.c_str(), adopt_owner_->first, adopt_owner_->second) != 0)
        CEFD_LOG_EVERY(log_every_s, error, "spool: cannot give %s to uid %u (%s): the service may not read it",
                       name.c_str(), static_cast<unsigned>(adopt_owner_->first), std::strerror(errno));
}

void Spool::Impl::quarantine_copy_locked(Segment& segment) {
    // One copy per segment: a second damaged record in it is in the copy already (or, if
    // written after the copy, in the segment itself until it is deleted).
    if (config_.corrupt_files_max == 0 || segment.quarantined) return;
    segment.quarantined = true;
    const std::string aside =
        path("corrupt/" + std::to_string(wall_clock_ns()) + "-" + file_name(segment.seq, "seg"));
    UniqueFd out(::open(aside.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!out.valid()) return;
    adopt(out.get());
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


}  // namespace cefd
