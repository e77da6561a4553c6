// engine/record.h: the types that cross a stage boundary between receive and parse.
//
// A received message travels from a Receiver to its lane's worker inside the lane's ByteRing
// (engine/queue/byte_ring.h) as one ring record: a MessageMeta followed by the message bytes.
// The receiver writes it; the worker reads it in place and releases it after the row is encoded,
// so the bytes are copied exactly once (socket buffer -> ring).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace cefd {

enum class Transport : std::uint8_t { udp = 0, tcp = 1, tls = 2 };

/// The sender's address, IPv4 or IPv6, in network byte order. 20 bytes, trivially copyable.
struct SourceAddress {
    std::uint8_t family = 0;   // AF_INET, AF_INET6 or 0 when unknown (stdin, files)
    std::uint8_t reserved = 0;
    std::uint16_t port = 0;    // host byte order
    std::uint8_t addr[16]{};   // IPv4 uses the first 4 bytes

    static SourceAddress from_sockaddr(const sockaddr* sa) noexcept;
    /// Writes the address without the port ("192.0.2.1", "2001:db8::1", "::ffff:..." is
    /// unmapped to plain IPv4). Returns the length written; `out` needs 46 bytes.
    std::size_t format(char* out) const noexcept;
    std::string to_string() const;
};

/// Written by the receiver in front of every message in the lane ring.
struct MessageMeta {
    std::int64_t receive_time_ns = 0;  // CLOCK_REALTIME when the bytes were read
    SourceAddress source;
    std::uint32_t length = 0;          // message bytes that follow this header
    Transport transport = Transport::udp;
    std::uint8_t flags = 0;            // MessageFlags
    std::uint16_t reserved = 0;
};
static_assert(sizeof(MessageMeta) == 40, "MessageMeta is part of the ring record layout");

enum MessageFlags : std::uint8_t {
    /// The message was cut (TCP frame over max_frame_bytes, kept as a prefix). Counted.
    message_truncated = 1,
};

/// A message as the worker sees it: the meta and a view of the bytes in the ring.
struct RawMessage {
    const MessageMeta* meta = nullptr;
    std::string_view bytes;
};

}  // namespace cefd
