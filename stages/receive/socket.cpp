#include "stages/receive/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

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
    const int granted = usable_receive_buffer(fd);
    if (granted < asked) {
        static std::atomic<bool> warned{false};  // one line for all lanes
        if (!warned.exchange(true))
            CEFD_LOG(warn,
                     "receive: UDP %s: SO_RCVBUF capped at %d bytes (asked %d); bursts may be "
                     "dropped by the kernel (receive_kernel_drops_total). Raise the cap with: "
                     "sysctl -w net.core.rmem_max=%d",
                     text.c_str(), granted, asked, asked);
    }
}

}  // namespace

int usable_receive_buffer(int fd) noexcept {
    int granted = 0;
    socklen_t length = sizeof granted;
    if (::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &length) != 0) return 0;
    return granted / 2;  // the kernel doubles the value it stores (half is bookkeeping)
}

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
    if (auto status = set_common_options(fd.get(), address.family, text); !status) return status.error();
    set_receive_buffer(fd.get(), rcvbuf_bytes, text);
    if (::bind(fd.get(), address.get(), address.length) != 0) return bind_error("UDP", text, errno);
    return fd;
}

std::uint32_t udp_socket_drops(int fd) noexcept {
    std::uint32_t meminfo[SK_MEMINFO_VARS] = {};
    socklen_t length = sizeof meminfo;
    if (::getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, &length) != 0 ||
        length <= SK_MEMINFO_DROPS * sizeof meminfo[0])
        return 0;
    return meminfo[SK_MEMINFO_DROPS];
}

namespace {

/// The windows the spread program hashes: each is 16 bytes, starting this many bytes before the
/// datagram's end, and read only when the datagram has `header_room` bytes more than that.
constexpr std::uint32_t window_starts_from_end[] = {16, 96, 192, 320};
constexpr std::uint32_t header_room = 128;

std::vector<sock_filter> content_spread_program(unsigned sockets) {
    std::vector<sock_filter> p;
    const auto op = [&p](std::uint16_t code, std::uint32_t k, std::uint8_t jt = 0, std::uint8_t jf = 0) {
        p.push_back(sock_filter{code, jt, jf, k});
    };
    constexpr std::uint32_t golden = 0x9E3779B1;  // odd: multiplying by it mixes low bits upward
    // Too short for one window: return an index past the group, so the kernel uses its hash.
    op(BPF_LD | BPF_W | BPF_LEN, 0);
    op(BPF_JMP | BPF_JGE | BPF_K, window_starts_from_end[0] + header_room, 1, 0);
    op(BPF_RET | BPF_K, 0xFFFFFFFF);
    op(BPF_LD | BPF_IMM, 0x2545F491);  // M[0]: the hash so far
    op(BPF_ST, 0);
    for (const std::uint32_t start : window_starts_from_end) {
        constexpr std::uint8_t block = 24;  // the instructions after the jump below
        const std::size_t before = p.size();
        op(BPF_LD | BPF_W | BPF_LEN, 0);
        op(BPF_JMP | BPF_JGE | BPF_K, start + header_room, 0, block);  // too short: skip it
        op(BPF_ALU | BPF_SUB | BPF_K, start);
        op(BPF_MISC | BPF_TAX, 0);  // X = len - start: the window's first byte
        for (std::uint32_t word = 0; word < 4; ++word) {
            op(BPF_LD | BPF_W | BPF_IND, 4 * word);  // A = bytes [X + 4w, X + 4w + 4)
            op(BPF_ST, 1 + word);
        }
        op(BPF_LD | BPF_MEM, 0);
        for (std::uint32_t word = 0; word < 4; ++word) {
            op(BPF_LDX | BPF_MEM, 1 + word);
            op(BPF_ALU | BPF_XOR | BPF_X, 0);
            op(BPF_ALU | BPF_MUL | BPF_K, golden);
        }
        op(BPF_ST, 0);
        CEFD_ASSERT(p.size() - before == std::size_t{block} + 2);
    }
    // The product's high half is the well-mixed part.
    op(BPF_LD | BPF_MEM, 0);
    op(BPF_ALU | BPF_MUL | BPF_K, golden);
    op(BPF_ALU | BPF_RSH | BPF_K, 16);
    op(BPF_ALU | BPF_MOD | BPF_K, sockets);
    op(BPF_RET | BPF_A, 0);
    return p;
}

}  // namespace

Status attach_content_spread(int udp_fd, unsigned sockets) {
    CEFD_ASSERT(sockets >= 1);
    std::vector<sock_filter> program = content_spread_program(sockets);
    const sock_fprog fprog{static_cast<unsigned short>(program.size()), program.data()};
    if (::setsockopt(udp_fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog, sizeof fprog) != 0)
        return Error{Errc::io, errno, "receive: SO_ATTACH_REUSEPORT_CBPF"};
    return ok_status();
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
