#include "stages/parse/mapping.h"

#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <system_error>
#include <limits>

namespace cefd {
namespace {

// ---- key table: open addressing over a five-byte hash, built at compile time ----

// Five bytes and the length, not every byte: a byte-by-byte hash is a chain of multiplies as
// long as the key, and the lookup runs for every key of every message. These positions tell
// apart the families of numbered keys (cs1/cn1, cs1Label/cs2Label, deviceCustomNumber1Label/
// ...2Label: byte 1, byte 2, the sixth from the end); the rest of the key is compared on a hit.
constexpr std::uint32_t key_hash(std::string_view key) noexcept {
    const auto at = [key](std::size_t i) { return std::uint32_t{static_cast<unsigned char>(key[i])}; };
    const std::size_t n = key.size();
    if (n == 0) return 0;
    std::uint32_t h = static_cast<std::uint32_t>(n) << 24;
    h ^= at(0) | at(n > 1 ? 1 : 0) << 8 | at(n > 2 ? 2 : 0) << 16;
    h += (at(n - 1) | at(n > 1 ? n - 2 : 0) << 8 | at(n > 6 ? n - 6 : 0) << 16) * 0x9E3779B1U;
    return (h * 0x85EBCA6BU) >> 16;
}

// 4 bytes per slot, the keys' bytes packed after the slots: the whole table is ~3.4 KiB (54
// cache lines) instead of 512 string_views (12 KiB) pointing into the column list, so in the
// pipeline, where each row's JSON pushes it out of L1, fewer lines come back per row.
struct KeySlot {
    std::uint16_t at = 0;   // offset of the key in KeyTable::bytes
    std::uint8_t size = 0;  // 0: empty slot
    Column column{};
};
static_assert(sizeof(KeySlot) == 4);
constexpr std::size_t key_slots = 512;  // about 3.5x the 140-odd keys: probes stay short
static_assert(std::has_single_bit(key_slots));

constexpr bool is_legacy(Column c) noexcept {
    // Replaced in Feb 2023 by ExtID and FieldDeviceCustomNumber1..3, which share their keys.
    return c == Column::ExternalID || c == Column::DeviceCustomNumber1 || c == Column::DeviceCustomNumber2 ||
           c == Column::DeviceCustomNumber3;
}

// CommonSecurityLog columns only: the Syslog table's are filled from the syslog header.
constexpr bool has_cef_key(std::size_t i) noexcept {
    const std::string_view key = columns[i].cef_key;
    return !key.empty() && !key.starts_with("header:") && !key.starts_with("syslog:") &&
           !is_legacy(static_cast<Column>(i));
}

constexpr std::size_t key_bytes_total() noexcept {
    std::size_t total = 0;
    for (std::size_t i = 0; i < common_security_log_column_count; ++i)
        if (has_cef_key(i)) total += columns[i].cef_key.size();
    return total;
}

struct KeyTable {
    std::array<KeySlot, key_slots> slots{};
    std::array<char, key_bytes_total()> bytes{};
};
static_assert(key_bytes_total() <= std::numeric_limits<std::uint16_t>::max());

constexpr KeyTable make_key_table() {
    KeyTable table{};
    std::size_t used = 0;
    for (std::size_t i = 0; i < common_security_log_column_count; ++i) {
        if (!has_cef_key(i)) continue;
        const std::string_view key = columns[i].cef_key;
        if (key.size() > std::numeric_limits<std::uint8_t>::max()) throw "CEF key too long for the table";
        std::size_t slot = key_hash(key) & (key_slots - 1);
        while (table.slots[slot].size != 0) slot = (slot + 1) & (key_slots - 1);
        table.slots[slot] = {static_cast<std::uint16_t>(used), static_cast<std::uint8_t>(key.size()),
                             static_cast<Column>(i)};
        for (const char c : key) table.bytes[used++] = c;
    }
    return table;
}
alignas(64) constexpr KeyTable key_table = make_key_table();

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

std::string_view trim_spaces(std::string_view text) noexcept {
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
    return text;
}

// ---- time ----

int month_index(std::string_view text) noexcept {
    static constexpr std::array<std::string_view, 12> months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (std::size_t i = 0; i < months.size(); ++i)
        if (text == months[i]) return static_cast<int>(i) + 1;
    return 0;
}

/// Reads exactly `n` digits at `at`.
bool read_digits(std::string_view s, std::size_t& at, std::size_t n, int& value) noexcept {
    if (at + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (!is_digit(s[at + i])) return false;
        v = v * 10 + (s[at + i] - '0');
    }
    value = v;
    at += n;
    return true;
}

/// Reads a zone at `at` (after an optional space); sets offset in minutes east of UTC.
bool read_zone(std::string_view s, std::size_t at, int& offset_minutes) noexcept {
    std::string_view zone = trim_spaces(s.substr(at));
    if (zone.empty()) {
        offset_minutes = 0;
        return true;
    }
    // Java's SimpleDateFormat writes "GMT+05:30" for a zone with no abbreviation (§3.3 `zzz`).
    if ((zone.starts_with("GMT") || zone.starts_with("UTC")) && zone.size() > 3 && (zone[3] == '+' || zone[3] == '-'))
        zone.remove_prefix(3);
    if (zone[0] == '+' || zone[0] == '-') {
        const int sign = zone[0] == '-' ? -1 : 1;
        std::size_t i = 1;
        int hours = 0;
        int minutes = 0;
        if (!read_digits(zone, i, 2, hours)) return false;
        if (i < zone.size() && zone[i] == ':') ++i;
        if (i < zone.size() && !read_digits(zone, i, 2, minutes)) return false;
        if (i != zone.size() || hours > 23 || minutes > 59) return false;
        offset_minutes = sign * (hours * 60 + minutes);
        return true;
    }
    struct Named {
        std::string_view name;
        int offset_minutes;
    };
    static constexpr Named named[] = {
        {"Z", 0},       {"UTC", 0},     {"GMT", 0},      {"UT", 0},      {"WET", 0},
        {"WEST", 60},   {"BST", 60},    {"CET", 60},     {"CEST", 120},  {"EET", 120},
        {"EEST", 180},  {"JST", 540},   {"EST", -300},   {"EDT", -240},  {"CST", -360},
        {"CDT", -300},  {"MST", -420},  {"MDT", -360},   {"PST", -480},  {"PDT", -420},
    };
    for (const Named& n : named) {
        if (zone == n.name) {
            offset_minutes = n.offset_minutes;
            return true;
        }
    }
    return false;
}

/// "HH:mm:ss[.SSS]" at `at`; milliseconds of the day.
bool read_clock(std::string_view s, std::size_t& at, std::int64_t& ms_of_day) noexcept {
    int h = 0;
    int m = 0;
    int sec = 0;
    if (!read_digits(s, at, 2, h) || at >= s.size() || s[at++] != ':' || !read_digits(s, at, 2, m) ||
        at >= s.size() || s[at++] != ':' || !read_digits(s, at, 2, sec))
        return false;
    if (h > 23 || m > 59 || sec > 60) return false;
    int ms = 0;
    if (at < s.size() && (s[at] == '.' || s[at] == ',')) {
        ++at;
        std::size_t digits = 0;
        while (at < s.size() && is_digit(s[at])) {
            if (digits < 3) ms = ms * 10 + (s[at] - '0');
            ++digits;
            ++at;
        }
        if (digits == 0) return false;
        for (std::size_t d = digits; d < 3; ++d) ms *= 10;
    }
    ms_of_day = ((static_cast<std::int64_t>(h) * 60 + m) * 60 + sec) * 1000 + ms;
    return true;
}

constexpr std::int64_t ms_per_day = 86'400'000;
/// How far ahead of the receive time a year-less time may be and still count as this year's.
constexpr std::int64_t future_margin_ms = ms_per_day;

std::optional<std::int64_t> parse_iso(std::string_view s) noexcept {
    std::size_t at = 0;
    int year = 0;
    int month = 0;
    int day = 0;
    if (!read_digits(s, at, 4, year) || s[at++] != '-' || !read_digits(s, at, 2, month) || at >= s.size() ||
        s[at++] != '-' || !read_digits(s, at, 2, day) || at >= s.size() || (s[at] != 'T' && s[at] != ' '))
        return std::nullopt;
    ++at;
    std::int64_t ms_of_day = 0;
    if (!valid_civil_date(year, month, day) || !read_clock(s, at, ms_of_day)) return std::nullopt;
    int offset = 0;
    if (!read_zone(s, at, offset)) return std::nullopt;
    return days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * ms_per_day +
           ms_of_day - std::int64_t{offset} * 60'000;
}

/// a == b for two keys of the same length `n`, inline instead of a call to memcmp (which was
/// 12 % of the parse kernel): overlapping 8- or 4-byte loads, every one inside both keys.
inline bool same_bytes(const char* a, const char* b, std::size_t n) noexcept {
    const auto load8 = [](const char* p) {
        std::uint64_t v;
        std::memcpy(&v, p, sizeof v);
        return v;
    };
    const auto load4 = [](const char* p) {
        std::uint32_t v;
        std::memcpy(&v, p, sizeof v);
        return v;
    };
    if (n >= 8) {
        for (std::size_t i = 0; i + 8 < n; i += 8)
            if (load8(a + i) != load8(b + i)) return false;
        return load8(a + n - 8) == load8(b + n - 8);
    }
    if (n >= 4) return load4(a) == load4(b) && load4(a + n - 4) == load4(b + n - 4);
    for (std::size_t i = 0; i < n; ++i)
        if (a[i] != b[i]) return false;
    return true;
}

}  // namespace

std::optional<Column> column_for_cef_key(std::string_view key) noexcept {
    std::size_t slot = key_hash(key) & (key_slots - 1);
    // Bounded: the table is never full, so an empty slot ends every probe.
    for (const KeySlot* s = &key_table.slots[slot]; s->size != 0; s = &key_table.slots[slot]) {
        if (s->size == key.size() && same_bytes(key_table.bytes.data() + s->at, key.data(), key.size()))
            return s->column;
        slot = (slot + 1) & (key_slots - 1);
    }
    return std::nullopt;
}

std::string_view checked_integer(std::string_view text, std::int64_t min, std::int64_t max) noexcept {
    text = trim_spaces(text);
    if (text.empty()) return {};
    std::size_t at = 0;
    const bool negative = text[0] == '-';
    if (negative) ++at;
    if (at >= text.size()) return {};
    const std::size_t first_digit = at;
    // Leading zeros are not JSON; they are dropped (a non-negative value stays a view).
    while (at + 1 < text.size() && text[at] == '0') ++at;
    if (negative && at != first_digit) return {};
    const std::size_t digits_start = at;
    if (text.size() - digits_start > 19) return {};
    std::uint64_t magnitude = 0;
    for (; at < text.size(); ++at) {
        if (!is_digit(text[at])) return {};
        magnitude = magnitude * 10 + static_cast<std::uint64_t>(text[at] - '0');
    }
    if (negative) {
        if (magnitude > static_cast<std::uint64_t>(-(min + 1)) + 1) return {};
        if (magnitude == 0) return {};  // "-0": valid JSON, but not an integer anyone sends
        return text;
    }
    if (magnitude > static_cast<std::uint64_t>(max)) return {};
    return text.substr(digits_start);
}

std::string_view checked_real(std::string_view text) noexcept {
    text = trim_spaces(text);
    std::size_t at = 0;
    if (at < text.size() && text[at] == '-') ++at;
    if (at >= text.size() || !is_digit(text[at])) return {};
    if (text[at] == '0') {
        ++at;
    } else {
        while (at < text.size() && is_digit(text[at])) ++at;
    }
    if (at < text.size() && text[at] == '.') {
        ++at;
        if (at >= text.size() || !is_digit(text[at])) return {};
        while (at < text.size() && is_digit(text[at])) ++at;
    }
    if (at < text.size() && (text[at] == 'e' || text[at] == 'E')) {
        ++at;
        if (at < text.size() && (text[at] == '+' || text[at] == '-')) ++at;
        if (at >= text.size() || !is_digit(text[at])) return {};
        while (at < text.size() && is_digit(text[at])) ++at;
    }
    if (at != text.size()) return {};
    // Valid JSON, but a real column holds a double: 99e307, or 1 followed by 310 zeros, is not a
    // finite one, and 1e-400 is not one either (it would be stored as 0). The exponent alone
    // does not say (1e308 is finite, 99e307 is not), so read it.
    double value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc{} || end != text.data() + text.size() || !std::isfinite(value)) return {};
    return text;
}

std::optional<std::int64_t> parse_cef_time_ms(std::string_view text, std::int64_t now_ms) noexcept {
    text = trim_spaces(text);
    if (text.empty()) return std::nullopt;
    if (is_digit(text[0]) && text.size() <= 15) {
        bool all_digits = true;
        std::int64_t value = 0;
        for (const char c : text) {
            if (!is_digit(c)) {
                all_digits = false;
                break;
            }
            value = value * 10 + (c - '0');
        }
        if (all_digits) return value;  // epoch milliseconds
    }
    if (is_digit(text[0])) return parse_iso(text);

    // MMM dd [yyyy] HH:mm:ss[.SSS] [zzz]; "Feb 5 07:02:09", the shortest, is 14 bytes.
    if (text.size() < 14 || text[3] != ' ') return std::nullopt;
    const int month = month_index(text.substr(0, 3));
    if (month == 0) return std::nullopt;
    std::size_t at = 4;
    int day = 0;
    if (at < text.size() && text[at] == ' ') ++at;
    if (!read_digits(text, at, 2, day)) {
        if (!read_digits(text, at, 1, day)) return std::nullopt;
    }
    if (at >= text.size() || text[at++] != ' ') return std::nullopt;
    std::int64_t year = 0;
    bool has_year = false;
    if (at + 5 <= text.size() && text[at + 4] == ' ') {
        int y = 0;
        if (!read_digits(text, at, 4, y)) return std::nullopt;
        ++at;
        year = y;
        has_year = true;
    }
    std::int64_t ms_of_day = 0;
    if (!read_clock(text, at, ms_of_day)) return std::nullopt;
    int offset = 0;
    if (!read_zone(text, at, offset)) return std::nullopt;
    const auto to_ms = [&](std::int64_t y) {
        return days_from_civil(y, static_cast<unsigned>(month), static_cast<unsigned>(day)) * ms_per_day +
               ms_of_day - std::int64_t{offset} * 60'000;
    };
    if (has_year) {
        if (!valid_civil_date(year, month, day)) return std::nullopt;
        return to_ms(year);
    }
    // No year: the latest of next, this and last year that is at most a day after now, the rule
    // syslog daemons use. A line stamped "Mar  5" read in December is from this March, not the
    // next one; a "Dec 31" line read on 1 January is last year's; a "Jan  1" line read a few
    // seconds before midnight on 31 December (sender clock ahead) is next year's. The day of
    // margin covers clock skew and senders east of UTC (their local time is taken as UTC).
    const std::int64_t this_year = civil_from_days(now_ms / ms_per_day).year;
    for (std::int64_t y = this_year + 1; y >= this_year - 1; --y) {
        if (!valid_civil_date(y, month, day)) continue;  // Feb 29 outside a leap year
        const std::int64_t candidate = to_ms(y);
        if (candidate - now_ms <= future_margin_ms) return candidate;
    }
    return std::nullopt;
}

std::size_t format_iso_ms(std::int64_t epoch_ms, char* out) noexcept {
    std::int64_t days = epoch_ms / ms_per_day;
    std::int64_t ms_of_day = epoch_ms % ms_per_day;
    if (ms_of_day < 0) {
        ms_of_day += ms_per_day;
        --days;
    }
    const CivilDate date = civil_from_days(days);
    const auto put = [&out](std::size_t at, std::int64_t value, int width) {
        for (int i = width - 1; i >= 0; --i) {
            out[at + static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
            value /= 10;
        }
    };
    const std::int64_t year = date.year < 0 ? 0 : (date.year > 9999 ? 9999 : date.year);
    put(0, year, 4);
    out[4] = '-';
    put(5, date.month, 2);
    out[7] = '-';
    put(8, date.day, 2);
    out[10] = 'T';
    put(11, ms_of_day / 3'600'000, 2);
    out[13] = ':';
    put(14, ms_of_day / 60'000 % 60, 2);
    out[16] = ':';
    put(17, ms_of_day / 1000 % 60, 2);
    out[19] = '.';
    put(20, ms_of_day % 1000, 3);
    out[23] = 'Z';
    return 24;
}

}  // namespace cefd
