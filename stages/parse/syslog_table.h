// stages/parse/syslog_table.h: what the Syslog table's columns need from a syslog header
// (non_cef = "syslog_table"; rules in README.md). Pure functions; nothing allocates.
#pragma once

#include <array>
#include <string_view>

#include "stages/parse/syslog.h"

namespace cefd {

/// Facility names as rsyslog and the Azure Monitor agent spell them, indexed by PRI / 8.
inline constexpr std::array<std::string_view, 24> syslog_facility_names = {
    "kern",   "user",   "mail",   "daemon", "auth",   "syslog", "lpr",    "news",
    "uucp",   "cron",   "authpriv", "ftp",  "ntp",    "audit",  "alert",  "clock",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"};

/// Severity names (RFC 5424 §6.2.1 keywords, as the Syslog table's SeverityLevel holds them),
/// indexed by PRI % 8.
inline constexpr std::array<std::string_view, 8> syslog_severity_names = {"emerg",  "alert", "crit", "err",
                                                                          "warning", "notice", "info", "debug"};

/// `pri` is 0..191 (parse_syslog() rejects anything else as a PRI).
constexpr std::string_view syslog_facility_name(int pri) noexcept {
    return syslog_facility_names[static_cast<std::size_t>(pri) / 8 % syslog_facility_names.size()];
}
constexpr std::string_view syslog_severity_name(int pri) noexcept {
    return syslog_severity_names[static_cast<std::size_t>(pri) % 8];
}

}  // namespace cefd
