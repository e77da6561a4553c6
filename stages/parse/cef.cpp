#include "stages/parse/cef.h"

#include <array>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace cefd {
namespace {

constexpr std::array<bool, 256> make_key_chars() {
    std::array<bool, 256> table{};
    for (int c = 'a'; c <= 'z'; ++c) table[static_cast<std::size_t>(c)] = true;
    for (int c = 'A'; c <= 'Z'; ++c) table[static_cast<std::size_t>(c)] = true;
    for (int c = '0'; c <= '9'; ++c) table[static_cast<std::size_t>(c)] = true;
    table['_'] = true;
    table['.'] = true;
    table['-'] = true;
    return table;
}
constexpr std::array<bool, 256> key_chars = make_key_chars();

constexpr bool is_key_char(char c) noexcept { return key_chars[static_cast<unsigned char>(c)]; }

constexpr bool is_trailing_blank(char c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/// True when the byte at `at` is preceded by an odd number of backslashes.
bool is_escaped(std::string_view text, std::size_t at) noexcept {
    std::size_t backslashes = 0;
    while (at > backslashes && text[at - 1 - backslashes] == '\\') ++backslashes;
    return (backslashes & 1U) != 0;
}

/// The next unescaped '|' at or after `from`, or npos.
std::size_t find_pipe(std::string_view text, std::size_t from) noexcept {
    for (;;) {
        const std::size_t at = text.find('|', from);
        if (at == std::string_view::npos || !is_escaped(text, at)) return at;
        from = at + 1;
    }
}

/// The first '=' in text[from, end), or npos; `backslash` is set when a '\\' comes before it
/// (or anywhere, when there is no '='). One pass for both: the parser needs to know whether a
/// value holds a backslash, and this scan crosses every value byte on its way to the next key.
std::size_t find_equals(std::string_view text, std::size_t from, bool& backslash) noexcept {
    const char* const begin = text.data();
    const char* p = begin + from;
    const char* const end = begin + text.size();
#if defined(__SSE2__)
    const __m128i equals = _mm_set1_epi8('=');
    const __m128i slash = _mm_set1_epi8('\\');
    while (end - p >= 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        const auto eq = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, equals)));
        const auto bs = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, slash)));
        if (eq != 0) {
            const unsigned first = static_cast<unsigned>(__builtin_ctz(eq));
            if ((bs & ((1U << first) - 1)) != 0) backslash = true;
            return static_cast<std::size_t>(p - begin) + first;
        }
        if (bs != 0) backslash = true;
        p += 16;
    }
#endif
    for (; p < end; ++p) {
        if (*p == '=') return static_cast<std::size_t>(p - begin);
        if (*p == '\\') backslash = true;
    }
    return std::string_view::npos;
}

/// The end of text[begin, end) without the spaces no backslash escapes. Producers pad values
/// (`src=192.0.2.7   spt=...`); ArcSight's and AMA's parsers drop the whole run (issue 13).
std::size_t end_without_padding(std::string_view text, std::size_t begin, std::size_t end) noexcept {
    while (end > begin && text[end - 1] == ' ' && !is_escaped(text, end - 1)) --end;
    return end;
}

}  // namespace

CefStatus parse_cef_header(std::string_view text, CefHeader& out) noexcept {
    if (text.starts_with("CEF:")) text.remove_prefix(4);
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    // Version: one or more digits; only 0 and 1 are defined.
    std::size_t at = 0;
    int version = 0;
    while (at < text.size() && at < 3 && text[at] >= '0' && text[at] <= '9') version = version * 10 + (text[at++] - '0');
    if (at == 0 || at >= text.size() || text[at] != '|' || version > 1) return CefStatus::bad_header;
    out.version = version;
    std::size_t from = at + 1;

    std::string_view* fields[] = {&out.vendor, &out.product, &out.device_version, &out.signature_id, &out.name};
    for (std::string_view* field : fields) {
        const std::size_t pipe = find_pipe(text, from);
        if (pipe == std::string_view::npos) return CefStatus::bad_header;
        *field = text.substr(from, pipe - from);
        from = pipe + 1;
    }
    // No '|' after Severity is fine when the line just ends there (trailing blanks trimmed).
    const std::size_t pipe = find_pipe(text, from);
    if (pipe == std::string_view::npos) {
        out.severity = text.substr(from);
        while (!out.severity.empty() && is_trailing_blank(out.severity.back())) out.severity.remove_suffix(1);
        out.extension = {};
    } else {
        out.severity = text.substr(from, pipe - from);
        out.extension = text.substr(pipe + 1);
    }
    // "k=v" in Severity means a field is missing and the extension slid into it: up to its end,
    // or up to a '|' in its values (legal unescaped, e.g. in a URL).
    if (out.severity.find('=') != std::string_view::npos) return CefStatus::bad_header;
    return CefStatus::ok;
}

std::size_t unescape_cef_header(std::string_view field, char* out) noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < field.size(); ++i) {
        const char c = field[i];
        if (c == '\\' && i + 1 < field.size() && (field[i + 1] == '|' || field[i + 1] == '\\')) {
            out[n++] = field[++i];
        } else {
            out[n++] = c;
        }
    }
    return n;
}

std::size_t unescape_cef_value(std::string_view value, char* out) noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < value.size(); ++i) {
        // Most values hold no backslash: copy each run up to the next one at once. This was
        // a byte-at-a-time loop and 13% of the instructions per WithSecure row (callgrind).
        const void* hit = std::memchr(value.data() + i, '\\', value.size() - i);
        const std::size_t run_end =
            hit == nullptr ? value.size() : static_cast<std::size_t>(static_cast<const char*>(hit) - value.data());
        std::memcpy(out + n, value.data() + i, run_end - i);
        n += run_end - i;
        i = run_end;
        if (i >= value.size()) break;
        const char c = value[i];
        if (i + 1 >= value.size()) {
            out[n++] = c;
            continue;
        }
        switch (value[i + 1]) {
            case '\\': out[n++] = '\\'; ++i; break;
            case '=': out[n++] = '='; ++i; break;
            case 'n': out[n++] = '\n'; ++i; break;
            case 'r': out[n++] = '\r'; ++i; break;
            default: out[n++] = c; break;  // not an escape: keep the backslash as sent
        }
    }
    return n;
}

CefExtensionReader::CefExtensionReader(std::string_view extension) noexcept {
    // A blank that a backslash escapes ("msg=a\\ ") is content, as it is before a key.
    while (!extension.empty() && is_trailing_blank(extension.back()) && !is_escaped(extension, extension.size() - 1))
        extension.remove_suffix(1);
    while (!extension.empty() && extension.front() == ' ') extension.remove_prefix(1);
    text_ = extension;
    has_key_ = find_key(0);
    leading_ = text_.substr(0, has_key_ ? (key_start_ == 0 ? 0 : key_start_ - 1) : text_.size());
}

bool CefExtensionReader::find_key(std::size_t from) noexcept {
    backslash_before_ = false;
    while (from < text_.size()) {
        const std::size_t equals = find_equals(text_, from, backslash_before_);
        if (equals == std::string_view::npos) return false;
        from = equals + 1;
        std::size_t start = equals;
        while (start > 0 && is_key_char(text_[start - 1])) --start;
        if (start == equals) continue;                          // "==" or " =": no key
        if (start != 0 && text_[start - 1] != ' ') continue;    // "a=b=c", "?x=1": inside a value
        if (text_[start] == '-' || text_[start] == '.') continue;  // "--mode=fast": a value's option
        if (is_escaped(text_, equals)) continue;                // cannot happen after key chars, but cheap
        key_start_ = start;
        equals_ = equals;
        return true;
    }
    return false;
}

bool CefExtensionReader::next(CefPair& pair) noexcept {
    if (!has_key_) return false;
    pair.key = text_.substr(key_start_, equals_ - key_start_);
    const std::size_t value_start = equals_ + 1;
    const bool more = find_key(value_start);
    // What lies between the value and the next '=' is the blanks and the next key, neither of
    // which can hold a backslash: the scan's flag is the value's.
    pair.value_has_backslash = backslash_before_;
    if (more) {
        // The spaces before the next key separate, however many; an escaped one is content.
        pair.value = text_.substr(value_start, end_without_padding(text_, value_start, key_start_ - 1) - value_start);
    } else {
        pair.value = text_.substr(value_start);
        has_key_ = false;
    }
    return true;
}

}  // namespace cefd
