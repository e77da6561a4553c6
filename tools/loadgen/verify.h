// tools/loadgen/verify.h: counts which stamped events of one run reached the stand-in.
//
// Reads the stand-in's JSONL (one row per line) and finds "cefdseq=<run-id>-<n>" in each row
// (first occurrence; it sits in AdditionalExtensions). Events 0 .. expected-1 are looked for:
// delivered = distinct n seen, lost = expected - delivered, duplicated = copies beyond the
// first. The file is read incrementally while it grows.
#pragma once

#include <cstdint>
#include <string>

namespace cefd::loadgen {

struct VerifyReport {
    std::uint64_t delivered = 0;
    std::uint64_t lost = 0;
    std::uint64_t duplicated = 0;
};

/// Reads `path` until every event is seen, or the file has not grown for `idle_wait_s`
/// seconds (0: read what is there once).
VerifyReport verify_delivery(const std::string& path, const std::string& run_id, std::uint64_t expected,
                             double idle_wait_s);

}  // namespace cefd::loadgen
