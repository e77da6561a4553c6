#include "engine/runtime/systemd.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "engine/unique_fd.h"

namespace cefd::systemd {
namespace {

// A positive decimal number that fills the whole string, or 0.
std::int64_t parse_positive(const char* text) noexcept {
    if (text == nullptr) return 0;
    const char* end = text + std::strlen(text);
    std::int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(text, end, value);
    if (ec != std::errc{} || ptr != end || value <= 0) return 0;
    return value;
}

}  // namespace

void notify(std::string_view state) noexcept {
    const char* socket_name = std::getenv("NOTIFY_SOCKET");
    if (socket_name == nullptr || state.empty()) return;
    const std::size_t name_length = std::strlen(socket_name);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    // Abstract sockets ('@name') have no terminating NUL and count exactly their bytes; a path
    // needs room for its NUL. Names that do not fit are ignored rather than truncated.
    const bool abstract = socket_name[0] == '@';
    if (name_length < 2 || name_length + (abstract ? 0 : 1) > sizeof(address.sun_path)) return;
    if (!abstract && socket_name[0] != '/') return;
    std::memcpy(address.sun_path, socket_name, name_length);
    if (abstract) address.sun_path[0] = '\0';
    const auto address_length =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_length + (abstract ? 0 : 1));

    // A socket per call: notifications are a handful per minute, and holding none means a
    // restarted service manager (new socket inode) is found again on the next call.
    const UniqueFd fd{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    if (!fd.valid()) return;
    // The kernel attaches our credentials; systemd checks the pid against NotifyAccess=.
    (void)::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address),
                   address_length);
}

std::int64_t watchdog_interval_us() noexcept {
    const std::int64_t interval_us = parse_positive(std::getenv("WATCHDOG_USEC"));
    if (interval_us == 0) return 0;
    // Set by systemd for the main process; a child that inherited the environment must not
    // believe it is the one being watched.
    if (const char* pid = std::getenv("WATCHDOG_PID"); pid != nullptr) {
        if (parse_positive(pid) != static_cast<std::int64_t>(::getpid())) return 0;
    }
    return interval_us;
}

}  // namespace cefd::systemd
