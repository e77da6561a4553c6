// Fuzz target: the CEF header, the extension reader, the value unescapers and the value checks
// the column types need (stages/parse/cef.h, mapping.h). Unescaping writes into a heap buffer
// of exactly the input's size, so ASan sees any write past the documented bound.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "stages/parse/cef.h"
#include "stages/parse/mapping.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using cefd::fuzz::inside;

bool is_key_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
}

void check_unescape(std::string_view text, bool header, std::string_view line) {
    // Exactly text.size() bytes (at least 1 so the pointer is valid): the documented room.
    const std::unique_ptr<char[]> out(new char[text.size() + (text.empty() ? 1 : 0)]);
    const std::size_t n =
        header ? cefd::unescape_cef_header(text, out.get()) : cefd::unescape_cef_value(text, out.get());
    CEFD_FUZZ_CHECK(n <= text.size(), line);
}

bool valid_integer_text(std::string_view text) noexcept {
    if (text.starts_with('-')) text.remove_prefix(1);
    if (text.empty() || (text.size() > 1 && text[0] == '0')) return false;
    for (const char c : text)
        if (c < '0' || c > '9') return false;
    return true;
}

void check_value(std::string_view value, std::string_view line) {
    const std::string_view i32 = cefd::checked_integer(value, INT32_MIN, INT32_MAX);
    CEFD_FUZZ_CHECK(i32.empty() || (inside(i32, value) && valid_integer_text(i32)), line);
    const std::string_view i64 = cefd::checked_integer(value, INT64_MIN, INT64_MAX);
    CEFD_FUZZ_CHECK(i64.empty() || (inside(i64, value) && valid_integer_text(i64)), line);
    CEFD_FUZZ_CHECK(i32.empty() || i32 == i64, line);
    const std::string_view real = cefd::checked_real(value);
    if (!real.empty()) {
        CEFD_FUZZ_CHECK(inside(real, value), line);
        const std::string object = "{\"k\":" + std::string(real) + "}";
        cefd::fuzz::JsonRowChecker checker(object);
        CEFD_FUZZ_CHECK(checker.check() == nullptr, object);
    }
    // 2024-03-14: any plausible receive time will do; the year rule is what matters.
    const auto ms = cefd::parse_cef_time_ms(value, 1'710'409'920'123);
    if (ms && *ms >= 0 && *ms <= 253'402'300'799'999) {
        char iso[32];
        const std::size_t n = cefd::format_iso_ms(*ms, iso);
        CEFD_FUZZ_CHECK(n == 24 && iso[10] == 'T' && iso[23] == 'Z', line);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view line(reinterpret_cast<const char*>(data), size);
    cefd::CefHeader header;
    std::string_view extension = line;
    if (cefd::parse_cef_header(line, header) == cefd::CefStatus::ok) {
        CEFD_FUZZ_CHECK(header.version == 0 || header.version == 1, line);
        for (const std::string_view field : {header.vendor, header.product, header.device_version, header.signature_id,
                                             header.name, header.severity}) {
            CEFD_FUZZ_CHECK(inside(field, line), line);
            check_unescape(field, true, line);
        }
        CEFD_FUZZ_CHECK(inside(header.extension, line), line);
        extension = header.extension;
    }

    cefd::CefExtensionReader reader(extension);
    CEFD_FUZZ_CHECK(inside(reader.leading_text(), extension), line);
    cefd::CefPair pair;
    std::size_t pairs = 0;
    const char* last_end = extension.data();
    while (reader.next(pair)) {
        CEFD_FUZZ_CHECK(++pairs <= extension.size(), line);  // each pair consumes at least "k="
        CEFD_FUZZ_CHECK(!pair.key.empty() && inside(pair.key, extension), line);
        CEFD_FUZZ_CHECK(inside(pair.value, extension), line);
        CEFD_FUZZ_CHECK(pair.key.data() >= last_end, line);  // in order, never overlapping
        for (const char c : pair.key) CEFD_FUZZ_CHECK(is_key_char(c), line);
        CEFD_FUZZ_CHECK(pair.key.data()[pair.key.size()] == '=', line);
        // Padding before the next key is no part of a value: it ends in a space only when a
        // backslash escapes that space.
        if (pair.value.ends_with(' ')) {
            std::size_t backslashes = 0;
            while (backslashes + 1 < pair.value.size() && pair.value[pair.value.size() - 2 - backslashes] == '\\')
                ++backslashes;
            CEFD_FUZZ_CHECK(backslashes % 2 == 1, line);
        }
        last_end = pair.value.data() + pair.value.size();
        check_unescape(pair.value, false, line);
        check_value(pair.value, line);
    }
    if (pairs == 0) check_value(line, line);
    return 0;
}
