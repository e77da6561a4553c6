// engine/pipeline/check_host.cpp: `cefd check`'s steps about this machine, before anything goes
// on the network: the open-file limit, every listener bindable, the sysctls that cap UDP
// buffers and backlogs, io_uring, and the spool directory (really written) and its disk's room.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "engine/pipeline/check_startup.h"
#include "engine/pipeline/check_steps.h"
#include "engine/sysctl.h"
#include "engine/unique_fd.h"
#include "stages/receive/engine.h"

namespace cefd::check_steps {
namespace {

std::string human_bytes(std::uint64_t bytes) {
    char buffer[32];
    if (bytes >= (1ULL << 30)) std::snprintf(buffer, sizeof buffer, "%.1f GiB", static_cast<double>(bytes) / (1ULL << 30));
    else if (bytes >= (1ULL << 20)) std::snprintf(buffer, sizeof buffer, "%.1f MiB", static_cast<double>(bytes) / (1ULL << 20));
    else std::snprintf(buffer, sizeof buffer, "%llu bytes", static_cast<unsigned long long>(bytes));
    return buffer;
}

/// A sysctl as a number, or -1 when it cannot be read.
long long sysctl_or_minus_one(const char* path) { return read_sysctl(path).value_or(-1); }

}  // namespace

CheckStep open_files_step(const Config& config) {
    if (auto limit = ensure_file_limit(config, false); !limit) {
        const std::string& text = limit.error().message;
        const auto split = text.find(": set LimitNOFILE");
        return {"open files", StepStatus::fail, text.substr(0, split), split == std::string::npos ? "" : text.substr(split + 2)};
    } else if (!limit.value().empty()) {
        const std::string& text = limit.value();
        const auto split = text.find("; set LimitNOFILE");
        return {"open files", StepStatus::warn, text.substr(0, split), split == std::string::npos ? "" : text.substr(split + 2)};
    }
    return {"open files", StepStatus::pass,
            "RLIMIT_NOFILE allows (or cefd raises it to) the " + std::to_string(file_limit_needed(config)) +
                " descriptors this config may need", ""};
}

void listener_steps(const Config& config, std::vector<CheckStep>& steps) {
    for (const Listener& listener : listeners_of(config)) {
        const std::string step = "listen " + listener.text();
        auto bound = probe_bind(listener);
        if (bound) {
            steps.push_back({step, StepStatus::pass, "bindable (" + listener.key + ")", ""});
            continue;
        }
        const Error& error = bound.error();
        std::string hint;
        if (error.code == Errc::address_in_use)
            hint = "stop what holds the port (is cefd already running? then use `cefd check --running`), or change " +
                   listener.key;
        else if (error.code == Errc::permission)
            hint = "ports below 1024 need CAP_NET_BIND_SERVICE: AmbientCapabilities=CAP_NET_BIND_SERVICE in the unit "
                   "(deploy/cefd.service has it), or a port of 1024 or more";
        else
            hint = "check receive.listen / metrics.listen: it must be an address of this machine";
        steps.push_back({step, StepStatus::fail, error.describe(), hint});
    }
}

CheckStep sysctl_step(const Config& config) {
    std::string message;
    std::string hint;
    bool warn = false;
    const long long rmem_max = sysctl_or_minus_one("/proc/sys/net/core/rmem_max");
    if (config.receive.udp_port != 0 && rmem_max >= 0) {
        message += "net.core.rmem_max=" + std::to_string(rmem_max);
        if (rmem_max < static_cast<long long>(config.receive.rcvbuf_bytes)) {
            warn = true;
            message += " is below receive.rcvbuf_bytes=" + std::to_string(config.receive.rcvbuf_bytes) +
                       ": the kernel caps each UDP socket's buffer, so bursts are dropped sooner";
            hint = "sysctl -w net.core.rmem_max=" + std::to_string(config.receive.rcvbuf_bytes) +
                   " and make it permanent with deploy/99-cefd.conf in /etc/sysctl.d";
        }
    }
    const long long backlog = sysctl_or_minus_one("/proc/sys/net/core/netdev_max_backlog");
    if (config.receive.udp_port != 0 && backlog >= 0) {
        message += std::string(message.empty() ? "" : "; ") + "net.core.netdev_max_backlog=" + std::to_string(backlog);
        if (backlog < 10'000) {
            warn = true;
            message += " (below 10000: packets queue in the kernel before any socket sees them)";
            if (hint.empty()) hint = "install deploy/99-cefd.conf in /etc/sysctl.d and run sysctl --system";
        }
    }
    const long long somaxconn = sysctl_or_minus_one("/proc/sys/net/core/somaxconn");
    if (config.receive.tcp_port != 0 && somaxconn >= 0)
        message += std::string(message.empty() ? "" : "; ") + "net.core.somaxconn=" + std::to_string(somaxconn);
    if (message.empty()) message = "no UDP or TCP listener";
    return {"sysctls", warn ? StepStatus::warn : StepStatus::pass, message, hint};
}

CheckStep uring_step(const Config& config) {
    using E = ReceiveConfig::Engine;
    if (config.receive.engine == E::recvmmsg)
        return {"io_uring", StepStatus::pass, "receive.engine = \"recvmmsg\": io_uring is not used", ""};
    if (config.receive.engine == E::automatic)  // auto = recvmmsg (receive.cpp says why)
        return {"io_uring", StepStatus::pass,
                "receive.engine = \"auto\" uses recvmmsg (measured cheaper): io_uring is not used", ""};
    const Status& probe = receive::probe_uring();
    if (probe) return {"io_uring", StepStatus::pass, "available: the receive engine is io_uring", ""};
    const std::string why = probe.error().describe();
    const std::string hint =
        "allow io_uring: sysctl kernel.io_uring_disabled=0 (Linux 6.6+), or a seccomp profile that allows "
        "io_uring_setup/io_uring_enter (Docker's default blocks them), or a kernel of 5.19 or later";
    if (config.receive.engine == E::io_uring)
        return {"io_uring", StepStatus::fail, "receive.engine = \"io_uring\" but io_uring is unavailable: " + why, hint};
    return {"io_uring", StepStatus::warn, "unavailable, so the recvmmsg/epoll fallback is used: " + why, hint};
}

CheckStep spool_step(const Config& config) {
    const SpoolConfig& spool = config.spool;
    if (auto writable = check_dir_writable(spool.dir); !writable)
        return {"spool", StepStatus::fail, "spool.dir: " + writable.error().describe(),
                "create " + spool.dir + " owned by the user cefd runs as (uid " + std::to_string(::geteuid()) +
                    "), mode 0700, on a writable filesystem"};
    std::string where = spool.dir;
    struct stat st {};
    if (::stat(spool.dir.c_str(), &st) == 0) {
        // Really write: a read-only bind mount or a full quota passes access(2).
        UniqueFd fd(::open(spool.dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
        if (!fd.valid() && errno != EOPNOTSUPP && errno != EISDIR)
            return {"spool", StepStatus::fail, "cannot create a file in " + spool.dir + " (errno " + std::to_string(errno) +
                                                ": " + std::strerror(errno) + ")",
                    "make " + spool.dir + " writable by uid " + std::to_string(::geteuid()) + " on a writable filesystem"};
        if (fd.valid()) {
            const std::string block(4096, 'x');
            if (::write(fd.get(), block.data(), block.size()) != static_cast<ssize_t>(block.size()) ||
                ::fdatasync(fd.get()) != 0)
                return {"spool", StepStatus::fail,
                        "writing to " + spool.dir + " failed (errno " + std::to_string(errno) + ": " + std::strerror(errno) + ")",
                        "free space on the spool's filesystem or fix the disk"};
        }
    } else {
        // Not created yet (run creates it): measure the filesystem it will be on.
        where = spool.dir.substr(0, spool.dir.rfind('/'));
        while (!where.empty() && ::stat(where.c_str(), &st) != 0) where = where.substr(0, where.rfind('/'));
        if (where.empty()) where = "/";
    }
    struct statvfs fs {};
    if (::statvfs(where.c_str(), &fs) != 0)
        return {"spool", StepStatus::warn, "cannot measure free space of " + where, ""};
    const std::uint64_t free_bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
    std::uint64_t used_bytes = 0;
    if (DIR* dir = ::opendir(spool.dir.c_str())) {
        while (const dirent* entry = ::readdir(dir)) {
            struct stat file {};
            const std::string name = entry->d_name;
            if (name.size() > 4 && name.compare(name.size() - 4, 4, ".seg") == 0 &&
                ::stat((spool.dir + "/" + name).c_str(), &file) == 0)
                used_bytes += static_cast<std::uint64_t>(file.st_size);
        }
        ::closedir(dir);
    }
    const std::string message = spool.dir + " writable; " + human_bytes(free_bytes) + " free, spool holds " +
                                human_bytes(used_bytes) + " of spool.max_bytes " + human_bytes(spool.max_bytes);
    if (free_bytes + used_bytes < spool.max_bytes) {
        // The disk fills before the spool reaches its limit: batches are then lost to write
        // errors during an outage, instead of the policy spool.when_full chose.
        return {"spool", StepStatus::fail, message + ": the disk would fill before the spool reaches its limit",
                "lower spool.max_bytes to at most " + std::to_string((free_bytes + used_bytes) / 10 * 9) +
                    " or give the spool's filesystem more space"};
    }
    return {"spool", StepStatus::pass, message, ""};
}

}  // namespace cefd::check_steps
