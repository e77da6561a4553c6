// stages/send/dead_letter.h: keeps batches Azure refused for good (400/403/404, or a 413 that
// cannot be split further), so an operator can fix the cause and replay them.
//
// Files, per batch, in [azure] dead_letter_dir (created 0700):
//   <UTC time>-<request id>.json.zst   the JSON array as sent (uncompressed, then zstd level 3);
//                                      if the body was not valid gzip: the raw body, zstd
//   <UTC time>-<request id>.meta.json  {"status","request_id","time","endpoint","dcr_id",
//                                       "stream","rows","json_bytes","response"} (response cut
//                                       to 4 KiB)
// Both are written to a temporary name and renamed, so a reader never sees half a file.
#pragma once

#include <string>

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

}  // namespace cefd
