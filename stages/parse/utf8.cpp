#include "stages/parse/utf8.h"

#include <cstdint>
#include <cstring>

namespace cefd {
namespace {

/// Length of the well-formed sequence at `at`, or 0 (Unicode Table 3-7).
std::size_t sequence_length(const unsigned char* s, std::size_t at, std::size_t size) noexcept {
    const unsigned char b0 = s[at];
    if (b0 < 0x80) return 1;
    const auto cont = [&](std::size_t i, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
        return at + i < size && s[at + i] >= lo && s[at + i] <= hi;
    };
    if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
    if (b0 == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
    if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) return cont(1) && cont(2) ? 3 : 0;
    if (b0 == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;  // no surrogates
    if (b0 == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
    if (b0 >= 0xF1 && b0 <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
    if (b0 == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
    return 0;
}

}  // namespace

bool is_valid_utf8(std::string_view text) noexcept {
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t size = text.size();
    std::size_t at = 0;
    while (at < size) {
        // ASCII runs 32 bytes per step (four words OR'd, one branch), then 8, then one sequence.
        if (at + 32 <= size) {
            std::uint64_t w[4];
            std::memcpy(w, s + at, 32);
            if (((w[0] | w[1] | w[2] | w[3]) & 0x8080808080808080ULL) == 0) {
                at += 32;
                continue;
            }
        }
        if (at + 8 <= size) {
            std::uint64_t word = 0;
            std::memcpy(&word, s + at, 8);
            if ((word & 0x8080808080808080ULL) == 0) {
                at += 8;
                continue;
            }
        }
        const std::size_t n = sequence_length(s, at, size);
        if (n == 0) return false;
        at += n;
    }
    return true;
}

std::size_t repair_utf8(std::string_view text, char* out) noexcept {
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t size = text.size();
    std::size_t written = 0;
    std::size_t at = 0;
    while (at < size) {
        const std::size_t n = sequence_length(s, at, size);
        if (n == 0) {
            std::memcpy(out + written, "\xEF\xBF\xBD", 3);
            written += 3;
            ++at;
        } else {
            std::memcpy(out + written, s + at, n);
            written += n;
            at += n;
        }
    }
    return written;
}

std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) noexcept {
    if (text.size() <= max_bytes) return text;
    std::size_t cut = max_bytes;
    // Step back over continuation bytes so the cut lands before a lead byte.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    return text.substr(0, cut);
}

}  // namespace cefd
