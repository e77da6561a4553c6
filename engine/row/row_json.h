// engine/row/row_json.h: encodes a Row as one JSON object, the form the Logs Ingestion API takes
// for CommonSecurityLog and Syslog: {"TimeGenerated":"2026-11-29T08:28:21.123456Z","Computer":...}.
//
// The same encoder serves both tables (Row::table): only set columns of that table are written
// (plus TimeGenerated from Row::receive_time_ns); a set column the table lacks (in_table()) is
// skipped. string and datetime values are JSON strings; int, long and real values are written
// as JSON numbers exactly as the parser validated them. Strings are escaped per RFC 8259 (", \, and control
// characters); the parser has already repaired invalid UTF-8, so bytes >= 0x80 pass through.
//
// The caller guarantees room: write_row_json() writes at most row_json_bound(row) bytes. Bytes
// between the returned end and that bound may be overwritten too (scratch of the fixed-size key
// copies): nothing the caller keeps may live there.
// No allocation; safe to call from any thread on distinct rows.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "engine/row/row.h"

namespace cefd {

/// An upper bound on the bytes write_row_json() writes for `row`.
std::size_t row_json_bound(const Row& row) noexcept;

/// Writes the row's JSON object at `out`; returns one past its last byte.
char* write_row_json(const Row& row, char* out) noexcept;

/// `text` escaped for the inside of a JSON string, with the same escapes as the row encoder.
/// Allocates: for reports and tools (cefd check --json, the stand-in), not the hot path.
std::string json_escape(std::string_view text);

}  // namespace cefd
