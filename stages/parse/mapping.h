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

#include "engine/clock.h"  // days_from_civil, civil_from_days
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

}  // namespace cefd
