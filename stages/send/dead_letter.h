// stages/send/dead_letter.h: keeps batches Azure refused for good (400/403/404, or a 413 that
// cannot be split further), so an operator can fix the cause and replay them.
//
// Files, per batch, in [azure] dead_letter_dir (created 0700):
//   <UTC time>-<request id>.json.zst   the JSON array as sent (uncompressed, then zstd level 3);
//                                      if the body was not valid gzip: the raw body, zstd
//   <UTC time>-<request id>.meta.json  {"status","request_id","time","endpoint","dcr_id",
//                                       "stream","rows","json_bytes","response"} (response cut
//                                       to 4 KiB)
// Both are written to a temporary name, fdatasync'd and renamed, and the directory is synced,
// so a reader never sees half a file and a batch acked out of the spool after
// write_dead_letter() returned ok survives a crash. Any failure returns an error (the caller
// keeps the batch).
// read_dead_letter() reads a pair back (for `cefd replay-dead-letter`), checking both ends.
#pragma once

#include <string>
#include <vector>

#include "engine/batch_types.h"
#include "engine/result.h"

namespace cefd {

struct DeadLetter {
    long status = 0;
    std::string request_id;
    std::string endpoint;
    std::string dcr_id;
    std::string stream;
    std::string response;
};

Status write_dead_letter(const std::string& dir, const SealedBatch& batch, const DeadLetter& letter);

/// The dead letters in `dir`: each pair's path without ".json.zst" / ".meta.json", oldest
/// first (names start with the UTC time). A .json.zst without its .meta.json is listed too
/// (read_dead_letter reports it).
std::vector<std::string> list_dead_letters(const std::string& dir);

struct StoredDeadLetter {
    SealedBatch batch;   // the JSON gzipped again, rows and json_bytes from the file
    std::string stream;  // as recorded in the metadata
};

/// Reads the pair at `base` back into a batch ready for the spool. `syslog_streams` are the
/// stream names that mean Table::syslog. Errors: a file missing, unreadable, not zstd, metadata
/// that is not the format above, a body that was not JSON (body_is_json false) or whose size or
/// shape does not match the metadata.
Result<StoredDeadLetter> read_dead_letter(const std::string& base, const std::vector<std::string>& syslog_streams);

}  // namespace cefd
