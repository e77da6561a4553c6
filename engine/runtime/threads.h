// engine/runtime/threads.h: CPU pinning and thread names. Pinning is best effort: a core that is
// not in the process's allowed set (a container's cpuset) is logged once and skipped.
#pragma once

#include <cstdint>
#include <vector>

namespace cefd {

/// Cores this process may run on (sched_getaffinity), in ascending order.
std::vector<std::uint32_t> allowed_cores();

/// Pins the calling thread to `core`. Returns false (and logs) when that fails.
bool pin_current_thread(std::uint32_t core);

/// Names the calling thread (shown by top -H and gdb); at most 15 characters are kept.
void name_current_thread(const char* name);

}  // namespace cefd
