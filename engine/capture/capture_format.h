// engine/capture/capture_format.h: the capture file format (owner of its layout and limits).
//
// `[capture]` makes cefd write every received message, as it came off the wire, to files named
// `capture-<unix ms>-<n>.cefdcap.zst` in `capture.dir`. `cefd-loadgen replay` reads them back.
//
// A file is one zstd frame (level 1, streaming; `zstd -dc` reads it) whose content is:
//
//   file header, 16 bytes:
//     0   8  magic "CEFDCAP1"
//     8   4  u32 version = 1
//     12  4  u32 record header bytes = 32 (a reader skips what it does not know)
//   then records, back to back, each a 32-byte header and the message:
//     0   8  i64 receive_time_ns   CLOCK_REALTIME when the receiver read the bytes
//     8   1  u8  transport         0 udp, 1 tcp, 2 tls (engine/record.h Transport)
//     9   1  u8  family            AF_INET (2), AF_INET6 (10) or 0 (unknown)
//     10  2  u16 source port       host byte order
//     12  16 source address        network byte order; IPv4 in the first 4 bytes
//     28  4  u32 length            message bytes that follow (at most 65,535 + 1 MiB frames:
//                                  a reader refuses more than capture_message_bytes_max)
//   integers little-endian (the byte order of every machine cefd runs on; the writer asserts
//   it). The message is the raw UDP payload or TCP/TLS frame, without framing.
//
// Files rotate once `rotate_bytes` of compressed output have been written. When all files
// together pass `max_bytes`, the oldest are deleted (counted: capture_deleted_files_total).
// A file that ends early (cefd killed) is still readable up to its last complete record; a
// reader stops there and says so (CaptureReader::truncated()).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cefd::capture_format {

inline constexpr char magic[8] = {'C', 'E', 'F', 'D', 'C', 'A', 'P', '1'};
inline constexpr std::uint32_t version = 1;
inline constexpr std::size_t file_header_bytes = 16;
inline constexpr std::size_t record_header_bytes = 32;
inline constexpr std::uint32_t capture_message_bytes_max = 2 * 1024 * 1024;
inline constexpr const char* file_prefix = "capture-";
inline constexpr const char* file_suffix = ".cefdcap.zst";

}  // namespace cefd::capture_format
