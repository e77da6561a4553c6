// stages/parse/mapping.h: CEF key -> CommonSecurityLog column, and the value checks the column
// types need. Pure functions; the key table is built at compile time from engine/row/columns.h.
//
// Choices (see README.md): `externalId` fills ExtID (string) and `cn1`..`cn3` fill
// FieldDeviceCustomNumber1..3 (long), the columns Microsoft introduced in Feb 2023; the legacy
// ExternalID / DeviceCustomNumber1..3 (int) are never filled. `start`/`end` fill StartTime/EndTime.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "engine/row/columns.h"

namespace cefd {

/// The column a CEF extension key fills, or nullopt for keys that go to AdditionalExtensions.
/// Case-sensitive, like CEF keys.
std::optional<Column> column_for_cef_key(std::string_view key) noexcept;

/// A valid JSON integer within [min, max], with leading zeros and surrounding spaces removed
/// (a view into `text`), or an empty view.
std::string_view checked_integer(std::string_view text, std::int64_t min, std::int64_t max) noexcept;
/// A valid, finite JSON number (RFC 8259 grammar), spaces removed, or an empty view.
std::string_view checked_real(std::string_view text) noexcept;

/// Reads a CEF time value (reference §3.3) as milliseconds since the epoch, UTC:
///   epoch milliseconds ("1710409920000"); "MMM dd [yyyy] HH:mm:ss[.SSS] [zzz]"; ISO 8601
///   ("2024-03-14T09:51:30[.fff](Z|+hh:mm)"). Without a year, the latest year (of next, this
///   and last) that puts the time at most one day after `now_ms`, the receive time (the rule
///   syslog daemons use; `now_ms` is the only clock, so tests freeze it). Without a zone, UTC. Zones: UTC, GMT, UT,
///   Z, +hh[:]mm, and the common US/European abbreviations (EST ... PDT, CET, CEST, EET, EEST,
///   WET, WEST, BST, JST). Anything else: nullopt.
std::optional<std::int64_t> parse_cef_time_ms(std::string_view text, std::int64_t now_ms) noexcept;

/// Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 bytes) for epoch milliseconds; returns bytes written.
std::size_t format_iso_ms(std::int64_t epoch_ms, char* out) noexcept;

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct CivilDate {
    std::int64_t year;
    unsigned month;
    unsigned day;
};
constexpr CivilDate civil_from_days(std::int64_t z) noexcept {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    return {y + (m <= 2 ? 1 : 0), m, d};
}

}  // namespace cefd
