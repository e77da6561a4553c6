// stages/parse/syslog.h: the syslog framing in front of CEF. Pure functions over byte views;
// nothing here allocates or owns memory, every view points into the input line.
//
// Accepted forms (reference §1.1):
//   RFC 3164  [<PRI>]Mmm dd hh:mm:ss HOSTNAME [TAG[PID]:] MSG   (day padded "Mar  4" or not "Mar 4";
//             an ISO-8601 timestamp in place of the BSD one, as rsyslog writes, is accepted too)
//   RFC 5424  <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [BOM]MSG  ("-" is NILVALUE;
//             SD may hold several elements with \" \\ \] escapes inside quoted values)
//   none      [<PRI>]CEF:...   (bare CEF, or a PRI followed at once by CEF)
// A 3164 TAG may be glued to the CEF ("darktrace:CEF:0|..."), and a 5424 header may stop early
// with the CEF where APP-NAME, PROCID or MSGID would be: the message then starts at "CEF:".
// A leading token that does not fit a form is left in the message; parse_syslog() never fails.
#pragma once

#include <cstdint>
#include <string_view>

namespace cefd {

enum class SyslogForm : std::uint8_t { none, rfc3164, rfc5424 };

struct SyslogMessage {
    SyslogForm form = SyslogForm::none;
    int pri = -1;                   // -1 when absent
    std::string_view timestamp;     // as sent (not interpreted: TimeGenerated is receive time)
    std::string_view hostname;      // empty when absent or NILVALUE
    std::string_view app_name;      // RFC 3164 TAG or RFC 5424 APP-NAME; empty when absent
    std::string_view procid;        // the [PID] of a 3164 tag, or PROCID
    std::string_view msgid;         // RFC 5424 only
    std::string_view structured_data;  // RFC 5424 only, "" when NILVALUE
    std::string_view message;       // MSG: the rest of the line (BOM removed, trailing CR/LF removed)
    std::string_view after_timestamp;  // everything after the timestamp: what dedupe hashes
};

/// Splits `line` into its syslog header fields and the message. Never fails; a line without a
/// recognisable header is all message.
SyslogMessage parse_syslog(std::string_view line) noexcept;

}  // namespace cefd
