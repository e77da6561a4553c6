// tests/support/failing_sync.h: replaces fdatasync() and fsync() with versions that fail with
// EIO while failing_sync::eio is set (a dying disk whose writes still reach the page cache), or
// only fsync() while failing_sync::fsync_eio is set (cefd fsyncs directories, fdatasyncs files),
// and count every call. The libraries are linked statically, so these are the ones they call; with
// the flag clear the real system call is made.
//
// Include it in exactly one .cpp of a test binary.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace cefd::test::failing_sync {

inline std::atomic<bool> eio{false};
inline std::atomic<bool> fsync_eio{false};
inline std::atomic<int> calls{0};

/// Sets eio for its lifetime.
struct Failing {
    Failing() { eio = true; }
    ~Failing() { eio = false; }
    Failing(const Failing&) = delete;
    Failing& operator=(const Failing&) = delete;
};

inline int call(long number, int fd) {
    ++calls;
    if (eio.load() || (number == SYS_fsync && fsync_eio.load())) {
        errno = EIO;
        return -1;
    }
    return static_cast<int>(::syscall(number, fd));
}

/// Sets fsync_eio for its lifetime.
struct FailingDirectorySync {
    FailingDirectorySync() { fsync_eio = true; }
    ~FailingDirectorySync() { fsync_eio = false; }
    FailingDirectorySync(const FailingDirectorySync&) = delete;
    FailingDirectorySync& operator=(const FailingDirectorySync&) = delete;
};

}  // namespace cefd::test::failing_sync

extern "C" int fdatasync(int fd) { return cefd::test::failing_sync::call(SYS_fdatasync, fd); }
extern "C" int fsync(int fd) { return cefd::test::failing_sync::call(SYS_fsync, fd); }
