// stages/parse/cef.h: the CEF header and extension (reference §2, §3). Pure functions over byte
// views; nothing here allocates. Views point into the input; unescaping writes into a caller's
// buffer that is at least as long as the input (unescaping only ever shortens text).
//
// Header: CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|Extension
//   - Version 0 or 1 ("CEF: 0" with a space, as `logger -t CEF` writes it, is accepted).
//   - `\|` and `\\` are the header escapes; a lone backslash before anything else is kept.
//   - All seven fields are required. The `|` after Severity may be missing when nothing follows
//     it, but a Severity holding `=` means the header is short (reference §8.10): rejected.
// Extension: key=value pairs separated by one space. A key is [A-Za-z0-9_][A-Za-z0-9_.-]* preceded by a space
//   (or at the start) and followed by an unescaped `=`. A value runs to the next such key, so
//   `=` in URLs and base64 stays in the value. The run of spaces before a key is padding and
//   belongs to no value, and trailing spaces, tabs, CR and LF at the end are dropped (§3.1); a
//   blank right after a backslash is kept (it is escaped), and so are spaces inside a value.
//   Value escapes: `\=` `\\` `\n` `\r`; any other backslash is kept as sent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cefd {

struct CefHeader {
    int version = 0;
    // Raw header fields, escapes still in place (see unescape_cef_header()).
    std::string_view vendor;
    std::string_view product;
    std::string_view device_version;
    std::string_view signature_id;
    std::string_view name;
    std::string_view severity;
    std::string_view extension;  // raw, untrimmed
};

enum class CefStatus : std::uint8_t { ok, bad_header };

/// `text` starts with "CEF:" or, when the syslog tag was "CEF", directly with the version.
CefStatus parse_cef_header(std::string_view text, CefHeader& out) noexcept;

/// True when `text` holds a backslash, i.e. unescaping may change it.
inline bool has_backslash(std::string_view text) noexcept {
    return text.find('\\') != std::string_view::npos;
}

/// Writes the header field without its escapes to `out` (room for field.size()); returns the length.
std::size_t unescape_cef_header(std::string_view field, char* out) noexcept;
/// Writes the extension value without its escapes to `out` (room for value.size()); returns the length.
std::size_t unescape_cef_value(std::string_view value, char* out) noexcept;

struct CefPair {
    std::string_view key;
    std::string_view value;  // raw, escapes still in place
    /// The value holds a backslash (has_backslash(value)), found by the same scan that found
    /// the next key, so the caller need not look again.
    bool value_has_backslash = false;
};

/// Walks the extension's pairs in order. next() is O(length of the pair).
class CefExtensionReader {
public:
    explicit CefExtensionReader(std::string_view extension) noexcept;

    /// Text before the first key (not a pair: counted and kept by the caller), usually empty.
    [[nodiscard]] std::string_view leading_text() const noexcept { return leading_; }
    /// The next pair, or false at the end.
    bool next(CefPair& pair) noexcept;

private:
    /// Finds the next key at or after `from`; sets key_start_/equals_, and backslash_before_
    /// to whether [from, equals_) (or [from, end) when false) holds a backslash.
    bool find_key(std::size_t from) noexcept;

    std::string_view text_;
    std::string_view leading_;
    std::size_t key_start_ = 0;
    std::size_t equals_ = 0;
    bool has_key_ = false;
    bool backslash_before_ = false;
};

}  // namespace cefd
