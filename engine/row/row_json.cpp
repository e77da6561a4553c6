// engine/row/row_json.cpp: the row encoder (contract in row_json.h).
//
// Speed comes from three things: column keys are pre-rendered (`,"DeviceVendor":`) at compile
// time; string values are scanned and copied 16 bytes at a time (SSE2) up to the next byte that
// needs an escape, with a 256-entry table for the escape and the last few bytes (most values
// need no escape at all; the byte loop plus its memcpy call per value were, with libc's
// memmove, 12.9% of cefd's samples at 100k events/s, bench/README.md); and TimeGenerated's
// "YYYY-MM-DDTHH:MM:SS" prefix is cached per thread, since a lane's rows share a second.
#include "engine/row/row_json.h"

#include <array>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "engine/clock.h"

namespace cefd {
namespace {

// Every key is copied as a whole `text` (a fixed-size copy is a few vector moves inline; a
// memcpy of key.size bytes was a libc call per column); the bytes past `size` are overwritten
// by the value that follows, and row_json_bound leaves room for them.
constexpr std::size_t key_copy_bytes = 40;
struct RenderedKey {
    std::array<char, key_copy_bytes> text{};
    std::size_t size = 0;
};

constexpr std::array<RenderedKey, column_count> make_keys() {
    std::array<RenderedKey, column_count> keys{};
    for (std::size_t i = 0; i < column_count; ++i) {
        RenderedKey& key = keys[i];
        key.text[key.size++] = ',';
        key.text[key.size++] = '"';
        for (const char c : columns[i].name) key.text[key.size++] = c;
        key.text[key.size++] = '"';
        key.text[key.size++] = ':';
    }
    return keys;
}
constexpr std::array<RenderedKey, column_count> rendered_keys = make_keys();

constexpr std::size_t longest_key() {
    std::size_t n = 0;
    for (const RenderedKey& k : rendered_keys) n = k.size > n ? k.size : n;
    return n;
}
static_assert(longest_key() <= key_copy_bytes);

// 0: copy as is. Otherwise the character after the backslash ('u' means \u00XX).
constexpr std::array<char, 256> make_escapes() {
    std::array<char, 256> table{};
    for (int c = 0; c < 0x20; ++c) table[static_cast<std::size_t>(c)] = 'u';
    table['\b'] = 'b';
    table['\f'] = 'f';
    table['\n'] = 'n';
    table['\r'] = 'r';
    table['\t'] = 't';
    table['"'] = '"';
    table['\\'] = '\\';
    table[0x7F] = 'u';  // DEL is legal JSON, but escaping it keeps logs and terminals readable
    return table;
}
constexpr std::array<char, 256> escapes = make_escapes();

#if defined(__SSE2__)
/// One bit per byte of `v` that needs an escape (below 0x20, '"', '\\', DEL).
inline unsigned escape_mask(__m128i v) noexcept {
    const __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v);  // unsigned < 0x20
    const __m128i special =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                     _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7F)));
    return static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(control, special)));
}

/// `width` (4 or 8) bytes at `p` in the low lanes of a vector, read without passing p + width.
template <std::size_t width>
inline __m128i load_low(const char* p) noexcept {
    if constexpr (width == 8) {
        return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    } else {
        std::int32_t v;
        std::memcpy(&v, p, sizeof v);
        return _mm_cvtsi32_si128(v);
    }
}

/// The last n (width <= n < 2 * width) bytes of a run: two overlapping loads of `width` bytes,
/// stored the same way if neither needs an escape. False (nothing written) otherwise.
template <std::size_t width>
inline bool copy_short_clean(const char* p, std::size_t n, char* out) noexcept {
    const __m128i head = load_low<width>(p);
    const __m128i tail = load_low<width>(p + n - width);
    constexpr unsigned lanes = (1U << width) - 1;
    if (((escape_mask(head) | escape_mask(tail)) & lanes) != 0) return false;
    char bytes[2 * width];
    std::memcpy(bytes, &head, width);
    std::memcpy(bytes + width, &tail, width);
    std::memcpy(out, bytes, width);
    std::memcpy(out + n - width, bytes + width, width);
    return true;
}
#endif

/// Copies the bytes of [p, end) up to the first one that needs an escape to `out` (advanced
/// past them) and returns a pointer to that byte, or `end`.
inline const char* copy_clean_run(const char* p, const char* const end, char*& out) noexcept {
#if defined(__SSE2__)
    while (end - p >= 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        // All 16 bytes are stored, even those past the run: 16 input bytes remain, each writes
        // at least one output byte, so the store stays inside this string's own output, and
        // what follows the run is written over by the escape and the rest of the value.
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out), v);
        const unsigned mask = escape_mask(v);
        if (mask != 0) {
            const auto clean = static_cast<std::size_t>(__builtin_ctz(mask));
            out += clean;
            return p + clean;
        }
        p += 16;
        out += 16;
    }
    // Fewer than 16 bytes left (most values: addresses, ports, names): two overlapping 8- or
    // 4-byte loads when none needs an escape; the byte loop below only for 1-3 bytes or an escape.
    const auto n = static_cast<std::size_t>(end - p);
    if (n >= 8 ? copy_short_clean<8>(p, n, out) : n >= 4 && copy_short_clean<4>(p, n, out)) {
        out += n;
        return end;
    }
#endif
    while (p < end && escapes[static_cast<unsigned char>(*p)] == 0) *out++ = *p++;
    return p;
}

/// `"value"` with RFC 8259 escapes. At most 2 + 6 * value.size() bytes.
__attribute__((always_inline)) inline char* write_string(std::string_view value, char* out) noexcept {
    *out++ = '"';
    const char* p = value.data();
    const char* const end = p + value.size();
    for (;;) {
        p = copy_clean_run(p, end, out);
        if (p == end) break;
        const auto c = static_cast<unsigned char>(*p++);
        const char e = escapes[c];
        *out++ = '\\';
        *out++ = e;
        if (e == 'u') {
            static constexpr char hex[] = "0123456789abcdef";
            *out++ = '0';
            *out++ = '0';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 0xF];
        }
    }
    *out++ = '"';
    return out;
}

void put_digits(char* out, std::int64_t value, int width) noexcept {
    for (int i = width - 1; i >= 0; --i) {
        out[i] = static_cast<char>('0' + value % 10);
        value /= 10;
    }
}

constexpr std::string_view time_key = "{\"TimeGenerated\":\"";
constexpr std::size_t time_text_bytes = 27;  // YYYY-MM-DDTHH:MM:SS.ffffffZ

/// Writes "YYYY-MM-DDTHH:MM:SS.ffffffZ" for CLOCK_REALTIME nanoseconds.
char* write_time(std::int64_t ns, char* out) noexcept {
    std::int64_t seconds = ns / 1'000'000'000;
    std::int64_t fraction_ns = ns % 1'000'000'000;
    if (fraction_ns < 0) {
        fraction_ns += 1'000'000'000;
        --seconds;
    }
    // Rows arrive in bursts within one second: format the date and clock once per second.
    thread_local std::int64_t cached_second = INT64_MIN;
    thread_local char cached[19];
    if (seconds != cached_second) {
        std::int64_t days = seconds / 86'400;
        std::int64_t second_of_day = seconds % 86'400;
        if (second_of_day < 0) {
            second_of_day += 86'400;
            --days;
        }
        const CivilDate date = civil_from_days(days);
        std::int64_t year = date.year;
        const unsigned month = date.month;
        const unsigned day = date.day;
        if (year < 0) year = 0;
        if (year > 9999) year = 9999;
        put_digits(cached, year, 4);
        cached[4] = '-';
        put_digits(cached + 5, month, 2);
        cached[7] = '-';
        put_digits(cached + 8, day, 2);
        cached[10] = 'T';
        put_digits(cached + 11, second_of_day / 3600, 2);
        cached[13] = ':';
        put_digits(cached + 14, second_of_day / 60 % 60, 2);
        cached[16] = ':';
        put_digits(cached + 17, second_of_day % 60, 2);
        cached_second = seconds;
    }
    std::memcpy(out, cached, 19);
    out[19] = '.';
    put_digits(out + 20, fraction_ns / 1000, 6);
    out[26] = 'Z';
    return out + time_text_bytes;
}

}  // namespace

std::size_t row_json_bound(const Row& row) noexcept {
    // + key_copy_bytes: a key is written as a whole RenderedKey::text, so the last one may
    // write that far past the final length (never further: every write starts inside it).
    return time_key.size() + time_text_bytes + 2 + row.column_set_count() * (longest_key() + 2) +
           6 * row.value_bytes() + key_copy_bytes;
}

char* write_row_json(const Row& row, char* out) noexcept {
    std::memcpy(out, time_key.data(), time_key.size());
    out = write_time(row.receive_time_ns, out + time_key.size());
    *out++ = '"';
    const Table table = row.table;
    row.for_each([&out, table](Column column, std::string_view value) {
        if (column == Column::TimeGenerated) return;  // always written from receive_time_ns
        // The parser never sets a column outside the row's table (fuzzed: tests/fuzz); this keeps
        // a caller's mistake from reaching Azure, which would reject the whole batch for it.
        if (!in_table(column, table)) [[unlikely]] return;
        const RenderedKey& key = rendered_keys[static_cast<std::size_t>(column)];
        std::memcpy(out, key.text.data(), key_copy_bytes);
        out += key.size;
        switch (info(column).type) {
            case ColumnType::int_:
            case ColumnType::long_:
            case ColumnType::real:
                // Validated JSON number text (row.h): written as is.
                std::memcpy(out, value.data(), value.size());
                out += value.size();
                break;
            case ColumnType::string:
            case ColumnType::datetime:
                out = write_string(value, out);
                break;
        }
    });
    *out++ = '}';
    return out;
}

std::string json_escape(std::string_view text) {
    std::string out(2 + 6 * text.size(), '\0');
    const char* end = write_string(text, out.data());
    out.resize(static_cast<std::size_t>(end - out.data()) - 1);  // without the closing quote
    out.erase(0, 1);                                              // and the opening one
    return out;
}

}  // namespace cefd
