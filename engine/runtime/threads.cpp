#include "engine/runtime/threads.h"

#include <pthread.h>
#include <sched.h>

#include <cstring>

#include "engine/log.h"

namespace cefd {

std::vector<std::uint32_t> allowed_cores() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<std::uint32_t> cores;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return cores;
    for (std::uint32_t i = 0; i < CPU_SETSIZE; ++i)
        if (CPU_ISSET(i, &set)) cores.push_back(i);
    return cores;
}

bool pin_current_thread(std::uint32_t core) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    if (const int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set); rc != 0) {
        CEFD_LOG(warn, "could not pin a thread to core %u: %s (running unpinned)", core, std::strerror(rc));
        return false;
    }
    return true;
}

void name_current_thread(const char* name) {
    char shortened[16];
    std::strncpy(shortened, name, sizeof shortened - 1);
    shortened[sizeof shortened - 1] = '\0';
    pthread_setname_np(pthread_self(), shortened);
}

}  // namespace cefd
