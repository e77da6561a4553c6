// tools/azure_standin/tables.h: the Log Analytics tables the stand-in accepts rows for, and
// their column types. This is the stand-in's own copy: CommonSecurityLog comes from
// commonsecuritylog-columns.tsv in this folder (embedded at build time), never from
// engine/row/columns.h, so that a wrong column table in cefd shows up as a 400 here.
//
// Tables are built once at start-up and read-only afterwards; any thread may look columns up.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cefd::standin {

enum class ColumnType : std::uint8_t { string, datetime, int_, long_, real };

std::string_view column_type_name(ColumnType type) noexcept;

struct ColumnInfo {
    std::string name;
    ColumnType type = ColumnType::string;
    /// Filled by the service (TenantId, Type, _ItemId, ...): a client that sends it has a bug.
    bool reserved = false;
};

/// A fixed set of columns with an open-addressing index (no allocation per lookup).
class Table {
public:
    Table(std::string name, std::vector<ColumnInfo> columns);

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] std::size_t size() const noexcept { return columns_.size(); }
    [[nodiscard]] const ColumnInfo& column(std::size_t index) const noexcept { return columns_[index]; }
    /// Index of the column called `key`, or -1.
    [[nodiscard]] int find(std::string_view key) const noexcept;

private:
    static constexpr std::size_t slot_count = 1024;  // > 4x the largest table: short probes
    std::string name_;
    std::vector<ColumnInfo> columns_;
    std::array<std::int16_t, slot_count> slots_{};
    std::array<std::uint32_t, slot_count> slot_tags_{};  // high hash bits: most misses skip the compare
};

/// CommonSecurityLog, parsed from the embedded TSV (column, type, cef_key).
const Table& common_security_log_table();
/// Syslog: the columns a collector may send to a stream that flows into it (Custom-Syslog).
const Table& syslog_table();
/// The table behind a DCR stream: a stream whose name ends in "-Syslog" (Custom-Syslog)
/// feeds Syslog; every other stream feeds CommonSecurityLog.
const Table& table_for_stream(std::string_view stream);

/// ISO-8601 date and time as Log Analytics parses it: YYYY-MM-DDTHH:MM[:SS[.fraction]] with an
/// optional Z or +HH:MM / -HH:MM (none: UTC). A space instead of the T is accepted too. A date
/// the calendar does not have (2026-02-30, 2023-02-29) is not one.
bool is_iso8601_datetime(std::string_view text) noexcept;
/// The same, as seconds since 1970-01-01 UTC (the fraction dropped); nullopt when not one.
std::optional<std::int64_t> iso8601_unix_seconds(std::string_view text) noexcept;

}  // namespace cefd::standin
