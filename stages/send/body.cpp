#include "stages/send/body.h"

#include <libdeflate.h>

#include <cstring>
#include <memory>

namespace cefd {

std::optional<std::string> gunzip_body(const std::vector<std::byte>& body, std::size_t size_hint) {
    std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)> d(
        libdeflate_alloc_decompressor(), &libdeflate_free_decompressor);
    // The gzip trailer's ISIZE is the uncompressed size mod 2^32: exact for our bodies.
    std::size_t size = size_hint;
    if (size == 0 && body.size() >= 18) {
        std::uint32_t isize = 0;
        std::memcpy(&isize, body.data() + body.size() - 4, 4);
        size = isize;
    }
    for (int attempt = 0; attempt < 4; ++attempt) {
        std::string out(size, '\0');
        std::size_t actual = 0;
        const auto rc = libdeflate_gzip_decompress(d.get(), body.data(), body.size(), out.data(), out.size(), &actual);
        if (rc == LIBDEFLATE_SUCCESS) {
            out.resize(actual);
            return out;
        }
        if (rc != LIBDEFLATE_INSUFFICIENT_SPACE) return std::nullopt;
        size = size * 2 + 1'048'576;
    }
    return std::nullopt;
}

std::vector<std::byte> gzip_body(std::string_view json) {
    std::unique_ptr<libdeflate_compressor, void (*)(libdeflate_compressor*)> c(libdeflate_alloc_compressor(1),
                                                                                &libdeflate_free_compressor);
    std::vector<std::byte> out(libdeflate_gzip_compress_bound(c.get(), json.size()));
    out.resize(libdeflate_gzip_compress(c.get(), json.data(), json.size(), out.data(), out.size()));
    return out;
}

std::optional<SplitArray> split_json_array(std::string_view json) {
    // Skip surrounding whitespace; the batcher writes none, but a replayed body could.
    while (!json.empty() && (json.front() == ' ' || json.front() == '\n')) json.remove_prefix(1);
    while (!json.empty() && (json.back() == ' ' || json.back() == '\n')) json.remove_suffix(1);
    if (json.size() < 2 || json.front() != '[' || json.back() != ']') return std::nullopt;

    // Top-level commas: outside strings, at depth 1. Bounded by the body size.
    std::vector<std::size_t> commas;
    int depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (std::size_t i = 0; i < json.size(); ++i) {
        const char ch = json[i];
        if (in_string) {
            if (escaped) escaped = false;
            else if (ch == '\\') escaped = true;
            else if (ch == '"') in_string = false;
            continue;
        }
        switch (ch) {
            case '"': in_string = true; break;
            case '[': case '{': ++depth; break;
            case ']': case '}': --depth; break;
            case ',': if (depth == 1) commas.push_back(i); break;
            default: break;
        }
    }
    if (commas.empty()) return std::nullopt;
    const std::size_t middle = json.size() / 2;
    std::size_t best = 0;
    for (std::size_t k = 1; k < commas.size(); ++k) {
        const auto distance = [&](std::size_t pos) { return pos > middle ? pos - middle : middle - pos; };
        if (distance(commas[k]) < distance(commas[best])) best = k;
    }
    const std::size_t at = commas[best];
    SplitArray split;
    split.first.reserve(at + 1);
    split.first.append(json.substr(0, at)).push_back(']');
    split.second.reserve(json.size() - at);
    split.second.append("[").append(json.substr(at + 1));
    split.first_rows = static_cast<std::uint32_t>(best + 1);
    split.second_rows = static_cast<std::uint32_t>(commas.size() - best);
    return split;
}

std::optional<std::pair<SealedBatch, SealedBatch>> split_batch(const SealedBatch& batch) {
    const auto json = gunzip_body(batch.body, batch.json_bytes);
    if (!json) return std::nullopt;
    auto split = split_json_array(*json);
    if (!split) return std::nullopt;
    std::pair<SealedBatch, SealedBatch> halves;
    for (auto* half : {&halves.first, &halves.second}) {
        const bool first = half == &halves.first;
        const std::string& part = first ? split->first : split->second;
        half->body = gzip_body(part);
        half->rows = first ? split->first_rows : split->second_rows;
        half->json_bytes = static_cast<std::uint32_t>(part.size());
        half->first_receive_ns = batch.first_receive_ns;
        half->last_receive_ns = batch.last_receive_ns;
        half->created_ns = batch.created_ns;
        half->table = batch.table;
    }
    return halves;
}

}  // namespace cefd
