#include "engine/pipeline/check_startup.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "engine/runtime/threads.h"
#include "stages/receive/tls.h"
#include "stages/send/send.h"

namespace cefd {
namespace {

/// Resolves a listen host to one socket address (numeric first, then the resolver).
bool resolve(const std::string& host, std::uint16_t port, bool udp, sockaddr_storage& out, socklen_t& length) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = udp ? SOCK_DGRAM : SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    const std::string service = std::to_string(port);
    if (::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found) != 0 || found == nullptr)
        return false;
    std::memcpy(&out, found->ai_addr, found->ai_addrlen);
    length = found->ai_addrlen;
    ::freeaddrinfo(found);
    return true;
}

/// Does this process have CAP_NET_BIND_SERVICE in its effective set?
bool has_net_bind_service() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("CapEff:", 0) != 0) continue;
        const unsigned long long caps = std::strtoull(line.c_str() + 7, nullptr, 16);
        return (caps >> CAP_NET_BIND_SERVICE) & 1U;
    }
    return false;
}

/// Socket inodes bound to `port` in one /proc/net table (TCP: only listeners).
void socket_inodes(const char* table, bool tcp, std::uint16_t port, std::set<unsigned long>& inodes) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout;
        unsigned long inode = 0;
        fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
        const auto colon = local.rfind(':');
        if (colon == std::string::npos || inode == 0) continue;
        if (std::strtoul(local.c_str() + colon + 1, nullptr, 16) != port) continue;
        if (tcp && state != "0A") continue;  // 0A: TCP_LISTEN
        inodes.insert(inode);
    }
}

}  // namespace

std::string Listener::text() const {
    const bool v6 = host.find(':') != std::string::npos;
    return std::string(udp ? "udp " : "tcp ") + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::vector<Listener> listeners_of(const Config& config) {
    std::vector<Listener> out;
    const ReceiveConfig& r = config.receive;
    if (r.udp_port != 0) out.push_back({"receive.udp_port", true, r.listen, r.udp_port});
    if (r.tcp_port != 0) out.push_back({"receive.tcp_port", false, r.listen, r.tcp_port});
    if (!r.tls_cert_file.empty() && r.tls_port != 0) out.push_back({"receive.tls_port", false, r.listen, r.tls_port});
    const std::string& m = config.metrics.listen;
    if (const auto colon = m.rfind(':'); !m.empty() && colon != std::string::npos) {
        std::string host = m.substr(0, colon);
        if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        const long port = std::strtol(m.c_str() + colon + 1, nullptr, 10);
        if (port > 0 && port <= 65535) out.push_back({"metrics.listen", false, host, static_cast<std::uint16_t>(port)});
    }
    return out;
}

std::string port_holder(bool udp, std::uint16_t port) {
    std::set<unsigned long> inodes;
    socket_inodes(udp ? "/proc/net/udp" : "/proc/net/tcp", !udp, port, inodes);
    socket_inodes(udp ? "/proc/net/udp6" : "/proc/net/tcp6", !udp, port, inodes);
    if (inodes.empty()) return {};
    std::string holders;
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) return {};
    while (const dirent* entry = ::readdir(proc)) {
        const char* pid = entry->d_name;
        if (pid[0] < '0' || pid[0] > '9') continue;
        const std::string fd_dir = std::string("/proc/") + pid + "/fd";
        DIR* fds = ::opendir(fd_dir.c_str());
        if (fds == nullptr) continue;  // another user's process, without CAP_SYS_PTRACE
        bool holds = false;
        while (const dirent* fd = ::readdir(fds)) {
            char target[64];
            const std::string link = fd_dir + "/" + fd->d_name;
            const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
            if (n <= 0) continue;
            target[n] = '\0';
            unsigned long inode = 0;
            if (std::sscanf(target, "socket:[%lu]", &inode) == 1 && inodes.contains(inode)) {
                holds = true;
                break;
            }
        }
        ::closedir(fds);
        if (!holds) continue;
        std::string comm;
        std::ifstream(std::string("/proc/") + pid + "/comm") >> comm;
        holders += std::string(holders.empty() ? "" : ", ") + "pid " + pid + (comm.empty() ? "" : " (" + comm + ")");
    }
    ::closedir(proc);
    return holders;
}

Status probe_bind(const Listener& listener) {
    sockaddr_storage address{};
    socklen_t length = 0;
    if (!resolve(listener.host, listener.port, listener.udp, address, length))
        return Error{Errc::config, listener.key + ": cannot resolve the listen address \"" + listener.host + "\""};
    UniqueFd fd(::socket(address.ss_family, (listener.udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Error{Errc::io, errno, listener.key + ": cannot create a socket"};
    // SO_REUSEADDR (not SO_REUSEPORT): TIME_WAIT leftovers do not count as in use, a live
    // socket, even one of another cefd that uses SO_REUSEPORT, does.
    const int one = 1;
    if (!listener.udp) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) == 0) return ok_status();
    const int error = errno;
    switch (error) {
        case EADDRINUSE: {
            const std::string holder = port_holder(listener.udp, listener.port);
            return Error{Errc::address_in_use, error,
                         listener.key + ": " + listener.text() + " is in use" +
                             (holder.empty() ? " (by a process this user cannot see)" : " by " + holder)};
        }
        case EACCES:
            // Ports below net.ipv4.ip_unprivileged_port_start need the capability.
            return Error{Errc::permission, error,
                         listener.key + ": " + listener.text() + " needs CAP_NET_BIND_SERVICE" +
                             (has_net_bind_service() ? "" : " (this process lacks it)")};
        case EADDRNOTAVAIL:  // the address is not one of this machine's
            return Error{Errc::config, error, listener.key + ": " + listener.host + " is not a local address"};
        default:
            return Error{Errc::io, error, listener.key + ": cannot bind " + listener.text()};
    }
}

Status check_dir_writable(const std::string& dir) {
    if (dir.empty()) return Error{Errc::config, "is empty"};
    std::string path = dir;
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    for (;;) {
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0) {
            if (!S_ISDIR(st.st_mode)) return Error{Errc::io, ENOTDIR, path + " is not a directory"};
            if (::access(path.c_str(), W_OK | X_OK) != 0) {
                const int error = errno;
                return Error{Errc::permission, error,
                             (path == dir ? dir : path + " (on the way to " + dir + ")") + " is not writable by uid " +
                                 std::to_string(::geteuid())};
            }
            return ok_status();
        }
        if (errno != ENOENT && errno != ENOTDIR) return Error{Errc::io, errno, "cannot stat " + path};
        const auto slash = path.rfind('/');
        // Each a new string moved in: assigning the literal in place draws a false -Wrestrict
        // from GCC 12.
        if (slash == std::string::npos)
            path = std::string(".");
        else
            path = slash == 0 ? std::string("/") : path.substr(0, slash);
    }
}

namespace {

struct FileNeeds {
    std::uint64_t full = 0;     // with the spool at max_bytes
    std::uint64_t minimum = 0;  // with the spool at min_spool_segments
};

// Below this many segments' descriptors, a spool at its limit hits EMFILE early in any outage.
constexpr std::uint64_t min_spool_segments = 64;

FileNeeds file_needs(const Config& config) {
    const std::uint64_t lanes =
        config.runtime.workers != 0 ? config.runtime.workers : std::max<std::size_t>(1, allowed_cores().size());
    const std::uint64_t segment_bytes = std::max<std::uint64_t>(1, config.spool.segment_bytes);
    const std::uint64_t segments = (config.spool.max_bytes + segment_bytes - 1) / segment_bytes + 1;
    // Per lane: UDP, TCP and TLS sockets, an io_uring, two eventfds.
    constexpr std::uint64_t per_lane = 6;
    // The metrics server's connections (httplib keeps a few alive) and curl's connections.
    constexpr std::uint64_t metrics_connections = 64;
    const std::uint64_t curl_connections = 2ULL * (1 + config.azure.extra_targets.size()) * config.azure.max_in_flight;
    // stdio, the config, /proc reads, the dead-letter writer, the spool dir and its LOCK.
    constexpr std::uint64_t margin = 64;
    const std::uint64_t base =
        config.receive.tcp_max_connections + lanes * per_lane + metrics_connections + curl_connections + margin;
    // Each segment holds two descriptors (the segment and its ack log) while it exists.
    return {base + 2 * segments, base + 2 * std::min(segments, min_spool_segments)};
}

}  // namespace

std::uint64_t file_limit_needed(const Config& config) { return file_needs(config).full; }

Result<std::string> ensure_file_limit(const Config& config, bool raise) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return Error{Errc::io, errno, "getrlimit(RLIMIT_NOFILE)"};
    const FileNeeds needs = file_needs(config);
    if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= needs.full) return std::string();
    const std::string hint = "set LimitNOFILE=" + std::to_string(needs.full) +
                             " in the systemd unit (ulimit -n for a shell), or lower receive.tcp_max_connections, "
                             "or raise spool.segment_bytes";
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needs.minimum) {
        return Error{Errc::config, "open-file limit (RLIMIT_NOFILE) is " + std::to_string(limit.rlim_cur) + " (hard " +
                                       std::to_string(limit.rlim_max) + "), but this config needs at least " +
                                       std::to_string(needs.minimum) + " (receive.tcp_max_connections + lanes + metrics + " +
                                       std::to_string(min_spool_segments) + " spool segments): " + hint};
    }
    const rlim_t target = limit.rlim_max == RLIM_INFINITY ? needs.full : std::min<rlim_t>(limit.rlim_max, needs.full);
    if (raise) {
        limit.rlim_cur = target;
        if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return Error{Errc::io, errno, "setrlimit(RLIMIT_NOFILE)"};
    }
    if (target >= needs.full) return std::string();
    // Enough to start; a spool that fills to max_bytes would run out of descriptors first.
    return "open-file limit (hard " + std::to_string(limit.rlim_max) + ") is below the " + std::to_string(needs.full) +
           " descriptors a spool at spool.max_bytes needs (2 per segment): in a long outage, the spool runs out of "
           "descriptors before it reaches its limit; " + hint;
}

namespace {

/// Who holds the flock on `path`, from /proc/locks: "pid 1234 (cefd)", or "".
std::string flock_holder(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return {};
    std::ifstream locks("/proc/locks");
    std::string line;
    while (std::getline(locks, line)) {
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:123456 0 EOF"
        std::istringstream fields(line);
        std::string id, kind, mode, access, pid, where;
        fields >> id >> kind >> mode >> access >> pid >> where;
        if (kind != "FLOCK") continue;
        const auto colon = where.rfind(':');
        if (colon == std::string::npos || std::strtoull(where.c_str() + colon + 1, nullptr, 10) != st.st_ino) continue;
        std::string comm;
        std::ifstream("/proc/" + pid + "/comm") >> comm;
        return "pid " + pid + (comm.empty() ? "" : " (" + comm + ")");
    }
    return {};
}

/// `message` is "table.key: problem" (the loaders name their key): added under that key, or
/// under `table` when it names none.
void add_keyed(ConfigErrors& errors, const std::string& table, const std::string& message) {
    const std::size_t colon = message.find(": ");
    if (message.starts_with(table + ".") && colon != std::string::npos)
        errors.add(message.substr(0, colon), message.substr(colon + 2));
    else
        errors.add(table, message);
}

}  // namespace

void check_startup(const Config& config, ConfigErrors& errors) {
    if (auto s = check_dir_writable(config.spool.dir); !s) errors.add("spool.dir", s.error().describe());
    if (!config.azure.dead_letter_dir.empty()) {
        if (auto s = check_dir_writable(config.azure.dead_letter_dir); !s)
            errors.add("azure.dead_letter_dir", s.error().describe());
    }
    // A cefd running with this spool holds these ports too: checking its config before a
    // restart is not a problem (InstanceLock keeps two from running at once).
    const std::string running = flock_holder(config.spool.dir + "/LOCK");
    for (const Listener& listener : listeners_of(config)) {
        auto s = probe_bind(listener);
        if (s) continue;
        const std::string text = s.error().describe();
        if (s.error().code == Errc::address_in_use && !running.empty() && text.find(running) != std::string::npos) continue;
        errors.add(listener.key, text.substr(listener.key.size() + 2));
    }
    if (auto s = ensure_file_limit(config, false); !s) errors.add("runtime", s.error().message);
    // The files can exist and be readable and still not load (not PEM, a key of another
    // certificate): run would stop at start, so load them here as run does.
    if (auto s = Sender::check_credentials(config.azure); !s) add_keyed(errors, "azure", s.error().message);
    if (!config.receive.tls_cert_file.empty()) {
        if (auto tls = receive::TlsContext::load(config.receive); !tls)
            add_keyed(errors, "receive", tls.error().message);
    }
}

Result<InstanceLock> InstanceLock::acquire(const Config& config) {
    InstanceLock lock;
    // The spool's LOCK: Spool::open takes it for good; here we only ask who holds it.
    const std::string lock_path = config.spool.dir + "/LOCK";
    if (UniqueFd fd(::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC)); fd.valid()) {
        if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
            const std::string holder = flock_holder(lock_path);
            return Error{Errc::address_in_use,
                         "another cefd (" + (holder.empty() ? std::string("pid not visible") : holder) +
                             ") uses the spool dir " + config.spool.dir + ": stop it, or give this one its own "
                             "spool.dir and ports"};
        }
    }
    for (const Listener& listener : listeners_of(config)) {
        // Abstract names (leading NUL) live in the network namespace, like the ports themselves.
        const std::string name = "cefd " + listener.text();
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::memcpy(address.sun_path + 1, name.data(), std::min(name.size(), sizeof address.sun_path - 2));
        const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 +
                                                   std::min(name.size(), sizeof address.sun_path - 2));
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd.valid()) return Error{Errc::io, errno, "instance lock: socket(AF_UNIX)"};
        if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) == 0 && ::listen(fd.get(), 1) == 0) {
            lock.sockets_.push_back(std::move(fd));
            continue;
        }
        if (errno != EADDRINUSE) return Error{Errc::io, errno, "instance lock for " + listener.text()};
        // Held: ask the holder's pid. A connection waits in its backlog; closing it is enough.
        std::string holder = "pid not visible";
        UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (probe.valid() && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), length) == 0) {
            ucred credentials{};
            socklen_t size = sizeof credentials;
            if (::getsockopt(probe.get(), SOL_SOCKET, SO_PEERCRED, &credentials, &size) == 0) {
                std::string comm;
                std::ifstream("/proc/" + std::to_string(credentials.pid) + "/comm") >> comm;
                holder = "pid " + std::to_string(credentials.pid) + (comm.empty() ? "" : " (" + comm + ")");
            }
        }
        return Error{Errc::address_in_use,
                     "another cefd (" + holder + ") already listens on " + listener.text() + " (" + listener.key +
                         "): stop it first; two instances on one port would split its traffic"};
    }
    return lock;
}

}  // namespace cefd
