// tools/loadgen/size_probe.cpp: cefd's /metrics and /proc, as `size` samples them (size_probe.h).
#include "tools/loadgen/size_probe.h"

#include <dirent.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

namespace cefd::loadgen::sizing {
namespace {

/// The socket inode listening on `port` in /proc/net/<table> (udp: any bound socket; tcp: LISTEN).
std::string listening_inode(const char* table, int port, bool tcp) {
    std::ifstream in(std::string("/proc/net/") + table);
    std::string line;
    std::getline(in, line);  // header
    char wanted[8];
    std::snprintf(wanted, sizeof wanted, ":%04X", port);
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
        fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
        if (local.size() < 5 || local.substr(local.size() - 5) != wanted) continue;
        if (tcp && state != "0A") continue;
        if (inode != "0") return inode;
    }
    return {};
}


}  // namespace

std::string http_get(const std::string& url) {
    const std::string rest = url.substr(7);
    const std::size_t slash = rest.find('/');
    const std::string authority = rest.substr(0, slash);
    const std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
    const std::size_t colon = authority.rfind(':');
    std::string host = authority.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    const std::string port = colon == std::string::npos ? "80" : authority.substr(colon + 1);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return {};
    int fd = -1;
    for (const addrinfo* info = found; info != nullptr && fd < 0; info = info->ai_next) {
        fd = ::socket(info->ai_family, info->ai_socktype | SOCK_CLOEXEC, info->ai_protocol);
        if (fd >= 0 && ::connect(fd, info->ai_addr, info->ai_addrlen) != 0) {
            ::close(fd);
            fd = -1;
        }
    }
    ::freeaddrinfo(found);
    if (fd < 0) return {};
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: " + authority + "\r\nConnection: close\r\n\r\n";
    std::string response;
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
        char buffer[65'536];
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (std::chrono::steady_clock::now() < deadline) {
            pollfd waiting{fd, POLLIN, 0};
            if (::poll(&waiting, 1, 200) <= 0) continue;
            const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
            if (got <= 0) break;
            response.append(buffer, static_cast<std::size_t>(got));
        }
    }
    ::close(fd);
    const std::size_t body = response.find("\r\n\r\n");
    if (response.rfind("HTTP/1.", 0) != 0 || response.find(" 200") > 12 || body == std::string::npos) return {};
    return response.substr(body + 4);
}

/// Prometheus text format: "name{labels} value [timestamp]" per line; values of one name are
/// summed over its label sets. Comments and lines that do not parse are skipped.
std::map<std::string, double, std::less<>> parse_metrics(std::string_view text) {
    std::map<std::string, double, std::less<>> sums;
    while (!text.empty()) {
        const std::size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        if (line.empty() || line.front() == '#') continue;
        std::size_t name_end = line.find_first_of("{ \t");
        if (name_end == std::string_view::npos) continue;
        const std::string_view name = line.substr(0, name_end);
        std::size_t value_at = name_end;
        if (line[name_end] == '{') {
            // Label values may hold '}' inside quotes.
            bool quoted = false;
            std::size_t at = name_end + 1;
            for (; at < line.size(); ++at) {
                if (line[at] == '\\' && quoted) ++at;
                else if (line[at] == '"') quoted = !quoted;
                else if (line[at] == '}' && !quoted) break;
            }
            if (at >= line.size()) continue;
            value_at = at + 1;
        }
        while (value_at < line.size() && (line[value_at] == ' ' || line[value_at] == '\t')) ++value_at;
        const std::string value(line.substr(value_at, line.find_first_of(" \t", value_at) - value_at));
        char* parsed_end = nullptr;
        const double number = std::strtod(value.c_str(), &parsed_end);
        if (value.empty() || parsed_end != value.c_str() + value.size() || !std::isfinite(number)) continue;
        sums[std::string(name)] += number;
    }
    return sums;
}

Scrape scrape(const std::string& url) {
    const std::string text = http_get(url);
    Scrape result;
    if (text.empty()) return result;
    const auto sums = parse_metrics(text);
    const auto value = [&](std::string_view name) {
        const auto found = sums.find(name);
        return found == sums.end() ? 0.0 : found->second;
    };
    result.ok = sums.contains("cefd_send_delivered_rows_total");
    result.delivered_rows = value("cefd_send_delivered_rows_total");
    result.delivered_batches = value("cefd_send_delivered_batches_total");
    result.ring_used_bytes = value("cefd_ring_used_bytes");
    result.spool_pending_batches = value("cefd_spool_pending_batches");
    // One cefd_ring_used_bytes series per lane.
    for (std::size_t at = text.find("\ncefd_ring_used_bytes"); at != std::string::npos;
         at = text.find("\ncefd_ring_used_bytes", at + 1)) {
        result.lanes += 1;
    }
    return result;
}

int find_listener_pid(int port, bool tcp) {
    std::string inode;
    for (const char* table : tcp ? std::vector<const char*>{"tcp", "tcp6"} : std::vector<const char*>{"udp", "udp6"}) {
        inode = listening_inode(table, port, tcp);
        if (!inode.empty()) break;
    }
    if (inode.empty()) return 0;
    const std::string link = "socket:[" + inode + "]";
    DIR* processes = ::opendir("/proc");
    if (processes == nullptr) return 0;
    int found = 0;
    while (const dirent* entry = ::readdir(processes)) {
        const int pid = std::atoi(entry->d_name);
        if (pid <= 0 || pid == ::getpid()) continue;
        const std::string fd_dir = "/proc/" + std::string(entry->d_name) + "/fd";
        DIR* fds = ::opendir(fd_dir.c_str());
        if (fds == nullptr) continue;
        while (const dirent* fd = ::readdir(fds)) {
            char target[64];
            const ssize_t length = ::readlink((fd_dir + "/" + fd->d_name).c_str(), target, sizeof target - 1);
            if (length > 0 && std::string_view(target, static_cast<std::size_t>(length)) == link) {
                found = pid;
                break;
            }
        }
        ::closedir(fds);
        if (found != 0) break;
    }
    ::closedir(processes);
    return found;
}

/// utime + stime of `pid` in seconds (-1 if it is gone).
double process_cpu_s(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::size_t name_end = text.rfind(')');  // the command name may hold spaces
    if (name_end == std::string::npos) return -1;
    std::istringstream fields(text.substr(name_end + 2));
    std::string field;
    double utime = 0;
    double stime = 0;
    // Fields 3..13 come first (state .. cmajflt), then utime (14) and stime (15).
    for (int i = 3; i <= 15 && fields >> field; ++i) {
        if (i == 14) utime = std::atof(field.c_str());
        if (i == 15) stime = std::atof(field.c_str());
    }
    return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

/// VmHWM (peak resident set) of `pid` in MiB.
double peak_rss_mib(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
    }
    return 0;
}

}  // namespace cefd::loadgen::sizing
