// stages/send/body.h: what the sender needs to do with a request body itself: gunzip it,
// split its JSON array in two at a row boundary (413), gzip the halves. Only used on the rare
// 413 and dead-letter paths, so these allocate freely.
//
// The body format is the batcher's: "[" object ("," object)* "]" (stages/batch/batch.cpp).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/batch_types.h"

namespace cefd {

/// The uncompressed body, or nullopt when it is not valid gzip.
std::optional<std::string> gunzip_body(const std::vector<std::byte>& body, std::size_t size_hint);

/// gzip (libdeflate level 1).
std::vector<std::byte> gzip_body(std::string_view json);

/// Splits a JSON array of objects at the top-level comma nearest its middle. Returns the two
/// arrays and their element counts, or nullopt when it holds fewer than two elements.
struct SplitArray {
    std::string first;
    std::string second;
    std::uint32_t first_rows = 0;
    std::uint32_t second_rows = 0;
};
std::optional<SplitArray> split_json_array(std::string_view json);

/// Splits a sealed batch into two (gunzip, split, gzip both); nullopt when it cannot be split.
std::optional<std::pair<SealedBatch, SealedBatch>> split_batch(const SealedBatch& batch);

}  // namespace cefd
