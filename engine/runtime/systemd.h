// engine/runtime/systemd.h: the two pieces of systemd's service protocol cefd uses, without
// libsystemd. `Type=notify` units learn from notify() when cefd is ready, reloading or stopping,
// and `WatchdogSec=` units restart cefd when its main loop stops sending "WATCHDOG=1".
//
// Who calls what (engine/pipeline/main.cpp): "READY=1" once every listener is bound and the
// pipeline runs; "RELOADING=1" on SIGHUP before re-reading, "READY=1" after; "STOPPING=1" when
// the drain starts; "WATCHDOG=1" from the main loop every watchdog_interval_us() / 2 while the
// pipeline is healthy; "STATUS=..." for a one-line summary shown by `systemctl status`.
//
// Thread safety: both functions only read the environment and may be called from any thread.
// Nothing here allocates, so they are safe on any path; they are not on the per-message path.
// Outside systemd ($NOTIFY_SOCKET unset) notify() does nothing. A failed send is ignored: the
// service manager is the one to notice a missing READY or WATCHDOG, and it does.
#pragma once

#include <cstdint>
#include <string_view>

namespace cefd::systemd {

/// Sends `state` ("READY=1", "RELOADING=1", "STOPPING=1", "WATCHDOG=1", "STATUS=...", or several
/// separated by '\n') as one datagram to the unix socket named by $NOTIFY_SOCKET: a path, or an
/// abstract socket when it starts with '@'. Does nothing when the variable is unset or invalid.
void notify(std::string_view state) noexcept;

/// The watchdog period from $WATCHDOG_USEC, in microseconds; 0 when the watchdog is off: the
/// variable is unset or not a positive number, or $WATCHDOG_PID names another process.
std::int64_t watchdog_interval_us() noexcept;

}  // namespace cefd::systemd
