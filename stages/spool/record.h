// stages/spool/record.h: the spool's on-disk format. This comment is its only description.
//
// Directory layout (SpoolConfig::dir, created 0700 if missing):
//
//   LOCK                        flock()ed by the running cefd, so two processes never share a spool
//   IDS                         the batch-id floor: no id at or above it is in use (below)
//   00000000000000000007.seg    segment 7: records, appended, never rewritten in place
//   00000000000000000007.ack    segment 7's ack log: ids of its records that are done
//   corrupt/                    damaged files moved or copied aside for inspection (capped,
//                               SpoolConfig::corrupt_files_max, oldest removed first)
//
// The number in a file name is the segment's sequence number (20 decimal digits, so names sort
// in order). The newest segment is the active one; a segment is deleted (.seg, then .ack) once
// every record in it is acknowledged and it is no longer active. Names are parsed strictly:
// exactly 20 digits naming 1 .. 2^63-1 (never read modulo 2^64). Any other file (but LOCK,
// corrupt/ and lost+found) is moved to corrupt/ at open and counted (unknown_files), so a
// misparsed name is never opened, deleted or numbered after.
//
// Segment file: records back to back, no file header, no padding. A record is a 64-byte header
// followed by `body_bytes` bytes of body (one Logs Ingestion request body, gzip). A segment is
// closed for appends once it holds segment_bytes (one record may take it past that).
// All integers are little-endian.
//
//   offset size  field
//        0    4  magic            "CSPL" (0x4c505343)
//        4    2  version          1
//        6    1  table            engine Table (0 CommonSecurityLog, 1 Syslog)
//        7    1  flags            0 (reserved)
//        8    4  body_bytes       0 .. record_body_bytes_max (64 MiB)
//       12    4  body_crc32c      CRC32C (Castagnoli) of the body
//       16    8  id               the spool's batch id (SpooledBatch::id), unique per spool
//       24    4  rows             rows in the batch
//       28    4  json_bytes       uncompressed size of the JSON array
//       32    8  first_receive_ns CLOCK_REALTIME of the oldest row
//       40    8  last_receive_ns
//       48    8  created_ns       CLOCK_REALTIME when the batch was sealed
//       56    4  reserved         0
//       60    4  header_crc32c    CRC32C of bytes 0..59
//
// Ack log: 16-byte entries, appended: id (8), magic "CACK" (4), CRC32C of the first 12 bytes (4).
// An id in segment S's ack log acknowledges that id in S only.
//
// Id floor (IDS): one 16-byte entry, rewritten in place: floor (8), magic "CIDS" (4), CRC32C of
// the first 12 bytes (4). Ids are reserved id_reserve_batches at a time: before an id at or
// above the floor is handed out, the floor is raised and (unless fsync = "never") synced. So
// ids found on disk never need to be read to be avoided: a segment that cannot be opened
// (permissions) still has all its ids below the floor.
//
// Writing: header and body go out in one pwritev() at the segment's end; if it fails or is
// short, the segment is truncated back to where the record began. The record is visible to the
// sender only after the write (and, with fsync = "batch", the fdatasync) returned. Checksums
// are computed when a record is written and verified whenever it is read back (a body the
// sender gets from memory, SpoolConfig::handoff_batches, is not read back).
//
// Recovery (Spool::open), per segment in sequence order:
//   - A header is valid if magic, version, header CRC match and the body fits inside the file.
//     Bodies of unacknowledged records are verified when read (next()), not at open, so opening
//     a 10 GiB spool reads 64 bytes per record, not 10 GiB.
//   - A bad header (torn write, bit rot, zeros, garbage) starts a damaged region: the scanner
//     looks forward for the next valid header and resumes there. Each damaged region counts as
//     one corrupt record. A segment with any damaged region is moved to corrupt/, and its good
//     unacknowledged records are copied into the new active segment (same ids), so the damage
//     is counted once, not on every start.
//   - An ack log with a torn or bad entry is moved to corrupt/ and rewritten with its good
//     entries (counted in corrupt_acks). A missing ack log counts too. Either way the worst
//     outcome is a batch delivered twice, never one lost.
//   - An ack log without its segment is a crash between the two unlinks: removed.
//   - A new active segment is always started; old ones are never appended to again.
//   - Ids continue above the largest id found and above the id floor, so acks in old logs never
//     name a new batch and an unreadable segment's ids are never reused. A segment that cannot
//     be opened is left untouched (counted in unreadable_segments, reported at shutdown); it is
//     read at the next start that can open it. Without a valid IDS file (damaged, or a spool
//     from before it existed) and with an unreadable segment, ids jump id_unknown_margin.
// A record body that fails its CRC (or cannot be read) when next() reads it is counted as a
// corrupt record, acknowledged (so it does not come back) and its segment copied to corrupt/.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace cefd::spool {

inline constexpr std::uint32_t record_magic = 0x4c505343;  // "CSPL" little-endian
inline constexpr std::uint32_t ack_magic = 0x4b434143;     // "CACK"
inline constexpr std::uint16_t format_version = 1;
inline constexpr std::size_t header_bytes = 64;
inline constexpr std::size_t ack_entry_bytes = 16;
inline constexpr std::uint32_t id_floor_magic = 0x53444943;  // "CIDS"
inline constexpr std::size_t id_floor_bytes = 16;
/// Ids reserved per write of IDS: one sync per 2^20 batches (hours at a busy collector).
inline constexpr std::uint64_t id_reserve_batches = 1ULL << 20;
/// Ids skipped when the floor is unknown and a segment cannot be read: 2^40 batches is far more
/// than a spool accepts in its life (350 years at 100 batches/s), and 2^64 leaves room for 2^24
/// such jumps.
inline constexpr std::uint64_t id_unknown_margin = 1ULL << 40;
/// Larger bodies are refused at accept (a batch is at most 1 MiB of JSON, so far below this).
inline constexpr std::uint32_t record_body_bytes_max = 64U * 1024 * 1024;

/// CRC32C (Castagnoli), SSE4.2 when the CPU has it, a table otherwise. `crc` chains calls:
/// crc32c(b, crc32c(a)) == crc32c(a ++ b).
std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc = 0) noexcept;

struct RecordHeader {
    std::uint8_t table = 0;
    std::uint32_t body_bytes = 0;
    std::uint32_t body_crc32c = 0;
    std::uint64_t id = 0;
    std::uint32_t rows = 0;
    std::uint32_t json_bytes = 0;
    std::int64_t first_receive_ns = 0;
    std::int64_t last_receive_ns = 0;
    std::int64_t created_ns = 0;
};

using HeaderBytes = std::array<std::byte, header_bytes>;
using AckBytes = std::array<std::byte, ack_entry_bytes>;
using IdFloorBytes = std::array<std::byte, id_floor_bytes>;

/// Fills in version, magic and header CRC.
HeaderBytes encode_header(const RecordHeader& header) noexcept;
/// nullopt if magic, version, header CRC or body_bytes limit do not match.
std::optional<RecordHeader> decode_header(std::span<const std::byte, header_bytes> bytes) noexcept;

AckBytes encode_ack(std::uint64_t id) noexcept;
/// nullopt if magic or CRC do not match.
std::optional<std::uint64_t> decode_ack(std::span<const std::byte, ack_entry_bytes> bytes) noexcept;

IdFloorBytes encode_id_floor(std::uint64_t floor) noexcept;
/// nullopt if magic or CRC do not match.
std::optional<std::uint64_t> decode_id_floor(std::span<const std::byte, id_floor_bytes> bytes) noexcept;

}  // namespace cefd::spool
