// engine/record.h: the types that cross a stage boundary between receive and parse, and the
// one owner of the message record format in the lane ring.
//
// A received message travels from a Receiver to its lane's worker inside the lane's ByteRing
// (engine/queue/byte_ring.h) as one ring record. The receiver writes it with
// write_message_record(); the worker reads it in place with read_message_record() and releases
// it (ByteRing::pop) after the row is encoded, so the bytes are copied exactly once (socket
// buffer -> ring). Nothing else encodes or decodes a record.
//
// Record layout (the ring adds its own length header in front; see byte_ring.h):
//   offset 0   MessageMeta, 40 bytes, host byte order, copied as is (both ends are this process)
//   offset 40  `meta.length` message bytes (no trailing LF), no terminator, no padding
// A record is therefore message_record_bytes(length) = 40 + length bytes; the largest message a
// ring takes is message_bytes_max(ring).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "engine/queue/byte_ring.h"

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

/// Bytes a record of a `length`-byte message takes in the ring.
constexpr std::size_t message_record_bytes(std::size_t length) noexcept {
    return sizeof(MessageMeta) + length;
}

/// The longest message `ring` can hold in one record.
inline std::uint32_t message_bytes_max(const ByteRing& ring) noexcept {
    return static_cast<std::uint32_t>(ring.max_record_bytes() - sizeof(MessageMeta));
}

/// Copies one message into `ring` as a record (meta.length is set from `bytes`) and commits it.
/// False when the ring is full: nothing was written. `bytes` must be at most
/// message_bytes_max(ring) long. The caller notifies the consumer once per batch.
inline bool write_message_record(ByteRing& ring, MessageMeta meta, std::string_view bytes) noexcept {
    const std::size_t total = message_record_bytes(bytes.size());
    const std::span<std::byte> room = ring.reserve(total);
    if (room.empty()) return false;
    meta.length = static_cast<std::uint32_t>(bytes.size());
    std::memcpy(room.data(), &meta, sizeof meta);
    if (!bytes.empty()) std::memcpy(room.data() + sizeof meta, bytes.data(), bytes.size());
    ring.commit(total);
    return true;
}

/// A record as the reader sees it: a copy of the meta and a view of the bytes in the ring, valid
/// until the record is popped.
struct MessageRecord {
    MessageMeta meta;
    std::string_view bytes;
};

/// Decodes a record returned by ByteRing::front(). A record shorter than its meta says is a bug
/// in the writer (both ends are this file), so it is asserted, not handled.
inline MessageRecord read_message_record(std::span<const std::byte> record) noexcept {
    MessageRecord out;
    CEFD_ASSERT(record.size() >= sizeof(MessageMeta));
    std::memcpy(&out.meta, record.data(), sizeof out.meta);
    CEFD_ASSERT(message_record_bytes(out.meta.length) <= record.size());
    out.bytes = std::string_view(reinterpret_cast<const char*>(record.data()) + sizeof out.meta,
                                 out.meta.length);
    return out;
}

}  // namespace cefd
