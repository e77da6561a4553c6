#include "stages/receive/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "engine/log.h"

namespace cefd::receive {
namespace {

Error bind_error(const char* what, const std::string& text, int err) {
    const std::string where = std::string("receive: cannot bind ") + what + " " + text;
    switch (err) {
        case EADDRINUSE:  // another process (or one without SO_REUSEPORT) holds the port
            return Error{Errc::address_in_use, err, where + ": address in use"};
        case EACCES:  // port below 1024 without CAP_NET_BIND_SERVICE
        case EPERM:
            return Error{Errc::permission, err,
                         where + ": permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)"};
        case EADDRNOTAVAIL:  // the address is not configured on any interface
            return Error{Errc::io, err, where + ": address not available on this host"};
        default:
            return Error{Errc::io, err, where};
    }
}

Status set_common_options(int fd, int family, const std::string& text) {
    const int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        return Error{Errc::io, errno, "receive: SO_REUSEPORT on " + text};
    if (family == AF_INET6) {
        // "::" listens for IPv4 too; a specific IPv6 address only ever matches IPv6 anyway.
        const int zero = 0;
        if (::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0)
            return Error{Errc::io, errno, "receive: IPV6_V6ONLY off on " + text};
    }
    return ok_status();
}

void set_receive_buffer(int fd, std::uint32_t rcvbuf_bytes, const std::string& text) {
    const int asked = static_cast<int>(rcvbuf_bytes);
    // SO_RCVBUFFORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN; without it, fall back.
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &asked, sizeof asked) != 0)
        (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &asked, sizeof asked);
    int granted = 0;
    socklen_t length = sizeof granted;
    (void)::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &length);
    // The kernel doubles the value it stores (half is bookkeeping), so compare with half.
    if (granted / 2 < asked) {
        static std::atomic<bool> warned{false};  // one line for all lanes
        if (!warned.exchange(true))
            CEFD_LOG(warn,
                     "receive: UDP %s: SO_RCVBUF capped at %d bytes (asked %d); bursts may be "
                     "dropped by the kernel (receive_kernel_drops_total). Raise the cap with: "
                     "sysctl -w net.core.rmem_max=%d",
                     text.c_str(), granted / 2, asked, asked);
    }
}

}  // namespace

Result<ListenAddress> ListenAddress::parse(const std::string& text, std::uint16_t port) {
    ListenAddress out;
    auto* in = reinterpret_cast<sockaddr_in*>(&out.storage);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    if (::inet_pton(AF_INET, text.c_str(), &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        out.length = sizeof(sockaddr_in);
    } else {
        out.storage = {};
        if (::inet_pton(AF_INET6, text.c_str(), &in6->sin6_addr) != 1)
            return Error{Errc::config,
                         "receive.listen: \"" + text + "\" is not an IPv4 or IPv6 address"};
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        out.length = sizeof(sockaddr_in6);
    }
    out.family = out.storage.ss_family;
    return out;
}

Result<UniqueFd> open_udp_socket(const ListenAddress& address, std::uint32_t rcvbuf_bytes,
                                 const std::string& text) {
    UniqueFd fd{::socket(address.family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
    if (!fd.valid()) return Error{Errc::io, errno, "receive: UDP socket for " + text};
    if (auto status = set_common_options(fd.get(), address.family, text); !status)
        return status.error();
    const int one = 1;
    // The kernel then attaches its running drop count to every datagram as a cmsg.
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one) != 0)
        return Error{Errc::io, errno, "receive: SO_RXQ_OVFL on " + text};
    set_receive_buffer(fd.get(), rcvbuf_bytes, text);
    if (::bind(fd.get(), address.get(), address.length) != 0) return bind_error("UDP", text, errno);
    return fd;
}

Result<UniqueFd> open_tcp_listener(const ListenAddress& address, bool nonblocking,
                                   const std::string& text) {
    const int type = SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
    UniqueFd fd{::socket(address.family, type, 0)};
    if (!fd.valid()) return Error{Errc::io, errno, "receive: TCP socket for " + text};
    if (auto status = set_common_options(fd.get(), address.family, text); !status)
        return status.error();
    if (::bind(fd.get(), address.get(), address.length) != 0) return bind_error("TCP", text, errno);
    if (::listen(fd.get(), SOMAXCONN) != 0)
        return Error{Errc::io, errno, "receive: listen on TCP " + text};
    return fd;
}

UniqueFd accept_pending(int listener_fd, sockaddr_storage& peer, int& error) noexcept {
    socklen_t peer_length = sizeof peer;
    UniqueFd fd{::accept4(listener_fd, reinterpret_cast<sockaddr*>(&peer), &peer_length,
                          SOCK_NONBLOCK | SOCK_CLOEXEC)};
    error = fd.valid() ? 0 : errno;
    return fd;
}

}  // namespace cefd::receive
