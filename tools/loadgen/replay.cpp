#include "tools/loadgen/replay.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <charconv>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/capture/capture.h"
#include "tools/loadgen/sender.h"

namespace cefd::loadgen {
namespace {

constexpr const char* replay_usage =
    "usage: cefd-loadgen replay FILE.zst [--target HOST:PORT] [--proto udp|tcp] [--framing newline|octet]\n"
    "                           [--speed 10x|max] [--preserve-sources]\n"
    "  --speed Nx   the original gaps divided by N (default 1x); max = no waiting\n"
    "  --preserve-sources  one UDP socket per original source (127.x sources keep their address)\n"
    "exit: 0 replayed to the end, 1 cut short or send failed, 2 bad usage\n";

struct ReplayOptions {
    std::string file;
    std::string host = "127.0.0.1";
    std::string port = "5514";
    bool tcp = false;
    bool octet = false;
    double speed = 1;  // 0 = max
    bool preserve_sources = false;
};

bool parse(int argc, char** argv, ReplayOptions& options, std::string& error) {
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "--preserve-sources") {
            options.preserve_sources = true;
            continue;
        }
        if (flag.rfind("--", 0) != 0) {
            if (!options.file.empty()) {
                error = "one capture file only";
                return false;
            }
            options.file = flag;
            continue;
        }
        if (i + 1 >= argc) {
            error = "missing value for " + flag;
            return false;
        }
        const std::string value = argv[++i];
        if (flag == "--target") {
            const std::size_t colon = value.rfind(':');
            if (colon == std::string::npos || colon == 0 || colon + 1 == value.size()) {
                error = "bad --target " + value;
                return false;
            }
            options.host = value.substr(0, colon);
            if (options.host.size() >= 2 && options.host.front() == '[') options.host = options.host.substr(1, options.host.size() - 2);
            options.port = value.substr(colon + 1);
        } else if (flag == "--proto" && (value == "udp" || value == "tcp")) {
            options.tcp = value == "tcp";
        } else if (flag == "--framing" && (value == "newline" || value == "octet")) {
            options.octet = value == "octet";
        } else if (flag == "--speed") {
            if (value == "max") {
                options.speed = 0;
            } else {
                char* end = nullptr;
                options.speed = std::strtod(value.c_str(), &end);
                if (end == value.c_str() || (*end != 'x' && *end != '\0') || (*end == 'x' && end[1] != '\0') ||
                    !(options.speed > 0 && options.speed <= 1e6)) {
                    error = "bad --speed " + value + " (e.g. 1x, 10x, max)";
                    return false;
                }
            }
        } else {
            error = "unknown flag or value: " + flag + " " + value;
            return false;
        }
    }
    if (options.file.empty()) {
        error = "which capture file?";
        return false;
    }
    if (options.preserve_sources && options.tcp) {
        error = "--preserve-sources is for UDP";
        return false;
    }
    return true;
}

/// A socket connected to the target; bound first to `bind_to` (IPv4, port 0) when given.
int connect_socket(const ReplayOptions& options, const in_addr* bind_to, std::string& error) {
    addrinfo hints{};
    hints.ai_socktype = options.tcp ? SOCK_STREAM : SOCK_DGRAM;
    addrinfo* found = nullptr;
    if (const int rc = ::getaddrinfo(options.host.c_str(), options.port.c_str(), &hints, &found); rc != 0) {
        error = std::string("cannot resolve target: ") + ::gai_strerror(rc);
        return -1;
    }
    int fd = -1;
    for (const addrinfo* info = found; info != nullptr && fd < 0; info = info->ai_next) {
        fd = ::socket(info->ai_family, info->ai_socktype | SOCK_CLOEXEC, info->ai_protocol);
        if (fd < 0) continue;
        if (bind_to != nullptr && info->ai_family == AF_INET) {
            sockaddr_in local{};
            local.sin_family = AF_INET;
            local.sin_addr = *bind_to;
            // A source we cannot take (not a local address) falls back to the default source.
            (void)::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local);
        }
        prepare_send_socket(fd, info->ai_family, !options.tcp);
        if (::connect(fd, info->ai_addr, info->ai_addrlen) != 0) {
            error = std::string("cannot connect: ") + std::strerror(errno);
            ::close(fd);
            fd = -1;
        }
    }
    ::freeaddrinfo(found);
    return fd;
}

/// One datagram; a full device or socket queue (ENOBUFS, EAGAIN) is waited out for up to ~0.5 s.
bool send_datagram(int fd, std::string_view bytes) {
    for (int tries = 0; tries < 10'000; ++tries) {
        if (::send(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size())) return true;
        if (!wait_to_retry_udp_send(errno)) return false;
    }
    return false;
}

bool send_all(int fd, const char* data, std::size_t length) {
    while (length > 0) {
        const ssize_t rc = ::send(fd, data, length, MSG_NOSIGNAL);
        if (rc < 0 && errno == EINTR) continue;
        if (rc <= 0) return false;
        data += rc;
        length -= static_cast<std::size_t>(rc);
    }
    return true;
}

}  // namespace

int run_replay(int argc, char** argv) {
    ReplayOptions options;
    std::string error;
    if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
        std::fputs(replay_usage, stdout);
        return 0;
    }
    if (!parse(argc, argv, options, error)) {
        std::fprintf(stderr, "cefd-loadgen replay: %s\n%s", error.c_str(), replay_usage);
        return 2;
    }
    auto opened = CaptureReader::open(options.file);
    if (!opened.ok()) {
        std::fprintf(stderr, "cefd-loadgen replay: %s\n", opened.error().describe().c_str());
        return 2;
    }
    CaptureReader& reader = *opened.value();
    const int default_fd = connect_socket(options, nullptr, error);
    if (default_fd < 0) {
        std::fprintf(stderr, "cefd-loadgen replay: %s\n", error.c_str());
        return 1;
    }
    std::map<std::string, int> source_fds;  // "family/address/port" -> socket
    std::uint64_t replayed = 0;
    std::uint64_t send_errors = 0;
    std::int64_t first_capture_ns = 0;
    const auto start = std::chrono::steady_clock::now();
    std::string frame;
    CapturedMessage message;
    while (reader.next(message)) {
        if (replayed == 0) first_capture_ns = message.meta.receive_time_ns;
        if (options.speed > 0) {
            // Capture times are wall-clock; gaps only, scaled. Sleep only when ahead.
            const auto due = start + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                         static_cast<double>(message.meta.receive_time_ns - first_capture_ns) / options.speed));
            if (due > std::chrono::steady_clock::now() + std::chrono::microseconds(200)) std::this_thread::sleep_until(due);
        }
        int fd = default_fd;
        if (options.preserve_sources) {
            const std::string key = std::to_string(message.meta.source.family) + "/" + message.meta.source.to_string() +
                                    "/" + std::to_string(message.meta.source.port);
            auto found = source_fds.find(key);
            if (found == source_fds.end()) {
                in_addr address{};
                std::memcpy(&address, message.meta.source.addr, 4);
                const bool loopback = message.meta.source.family == AF_INET && (ntohl(address.s_addr) >> 24) == 127;
                const int source_fd = connect_socket(options, loopback ? &address : nullptr, error);
                found = source_fds.emplace(key, source_fd >= 0 ? source_fd : default_fd).first;
            }
            fd = found->second;
        }
        bool ok = false;
        if (!options.tcp) {
            ok = send_datagram(fd, message.bytes);
        } else {
            frame.clear();
            if (options.octet) frame += std::to_string(message.bytes.size()) + " ";
            frame.append(message.bytes);
            if (!options.octet) frame += '\n';
            ok = send_all(fd, frame.data(), frame.size());
        }
        if (!ok) ++send_errors;
        ++replayed;
    }
    const double elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (const auto& [key, fd] : source_fds) {
        if (fd != default_fd) ::close(fd);
    }
    ::close(default_fd);
    std::printf("{\"file\":\"%s\",\"replayed\":%llu,\"send_errors\":%llu,\"sources\":%zu,\"elapsed_s\":%.3f,"
                "\"truncated\":%s}\n",
                options.file.c_str(), static_cast<unsigned long long>(replayed),
                static_cast<unsigned long long>(send_errors), options.preserve_sources ? source_fds.size() : std::size_t{1},
                elapsed_s, reader.truncated() ? "true" : "false");
    return reader.truncated() || send_errors > 0 ? 1 : 0;
}

}  // namespace cefd::loadgen
