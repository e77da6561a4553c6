// stages/parse/utf8.h: UTF-8 validation and repair for message bytes. No allocation.
#pragma once

#include <cstddef>
#include <string_view>

namespace cefd {

/// True when `text` is well-formed UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF).
/// ASCII runs are checked 32 bytes at a time.
bool is_valid_utf8(std::string_view text) noexcept;

/// Copies `text` to `out`, replacing every byte that does not start a well-formed sequence with
/// U+FFFD (EF BF BD). `out` needs room for 3 * text.size(). Returns the bytes written.
std::size_t repair_utf8(std::string_view text, char* out) noexcept;

/// The longest prefix of `text` no longer than `max_bytes` that does not end inside a UTF-8
/// sequence.
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) noexcept;

}  // namespace cefd
