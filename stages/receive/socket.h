// stages/receive/socket.h: the lane's listening sockets, opened once by Receiver::open.
//
// Every listener is bound with SO_REUSEPORT, so each lane owns one UDP socket and one TCP
// listener on the same port and the kernel spreads senders over lanes. "::" is dual-stack
// (IPV6_V6ONLY off), so IPv4 senders arrive as ::ffff:a.b.c.d and SourceAddress unmaps them.
// UDP sockets get SO_RCVBUF from the config (read back; capped sizes are logged once with the
// sysctl that lifts the cap); udp_socket_drops reads the kernel's drop count for one.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <utility>

#include "engine/result.h"
#include "engine/unique_fd.h"

namespace cefd::receive {

using cefd::UniqueFd;  // engine/unique_fd.h

/// A parsed listen address ("127.0.0.1", "0.0.0.0", "::1", "::").
struct ListenAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;
    int family = 0;

    static Result<ListenAddress> parse(const std::string& text, std::uint16_t port);
    [[nodiscard]] const sockaddr* get() const noexcept {
        return reinterpret_cast<const sockaddr*>(&storage);
    }
};

/// A bound UDP socket with SO_REUSEPORT and SO_RCVBUF (`rcvbuf_bytes`).
Result<UniqueFd> open_udp_socket(const ListenAddress& address, std::uint32_t rcvbuf_bytes,
                                 const std::string& text);
/// How many datagrams the kernel has dropped on `fd` since it was opened (its buffer was full):
/// SO_MEMINFO's SK_MEMINFO_DROPS, the counter SO_RXQ_OVFL would attach to every datagram. One
/// getsockopt per receive pass instead of a control message per datagram. 0 when unreadable.
std::uint32_t udp_socket_drops(int fd) noexcept;
/// The receive buffer the kernel granted `fd`, in usable bytes (SO_RCVBUF reads back twice the
/// figure); 0 when it cannot be read.
int usable_receive_buffer(int fd) noexcept;
/// Makes the kernel choose, for every datagram to this SO_REUSEPORT group, the socket that a hash
/// of the datagram's own bytes names (a classic BPF program, SO_ATTACH_REUSEPORT_CBPF), instead
/// of the one its sender's address and port name. The hash reads four 16-byte windows counted
/// back from the datagram's end (16, 96, 192 and 320 bytes before it), each only when 128 bytes
/// remain before it, so the syslog header (PRI, timestamp, host) never takes part: one sender's
/// datagrams spread evenly over `sockets` lanes, and the same message sent twice, from any
/// port and with any timestamp, lands on the same lane, where dedupe can see both. A datagram
/// shorter than 144 bytes keeps the kernel's flow hash. The program is the group's: attaching
/// it to any one member sets it for all. Fails with the kernel's errno (before Linux 4.5).
Status attach_content_spread(int udp_fd, unsigned sockets);
/// A listening TCP socket with SO_REUSEPORT. `nonblocking` for the epoll engine.
Result<UniqueFd> open_tcp_listener(const ListenAddress& address, bool nonblocking,
                                   const std::string& text);

/// Accepts one pending connection on a non-blocking listener (SOCK_NONBLOCK | SOCK_CLOEXEC) and
/// fills `peer`. Returns an invalid fd when nothing was accepted, with the errno in `error`
/// (EAGAIN: none pending); AcceptBackoff (connection_table.h) decides what an error means.
UniqueFd accept_pending(int listener_fd, sockaddr_storage& peer, int& error) noexcept;

}  // namespace cefd::receive
