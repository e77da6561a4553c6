#include "stages/parse/syslog.h"

#include <array>

namespace cefd {
namespace {

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

constexpr std::string_view bom = "\xEF\xBB\xBF";

/// Index of the first space at or after `from`, or line.size().
std::size_t find_space(std::string_view line, std::size_t from) noexcept {
    const std::size_t at = line.find(' ', from);
    return at == std::string_view::npos ? line.size() : at;
}

std::size_t skip_spaces(std::string_view line, std::size_t from) noexcept {
    while (from < line.size() && line[from] == ' ') ++from;
    return from;
}

constexpr std::array<std::string_view, 12> months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool is_month(std::string_view text) noexcept {
    for (const auto m : months)
        if (text == m) return true;
    return false;
}

/// "hh:mm:ss" at `at`.
bool is_clock(std::string_view s, std::size_t at) noexcept {
    if (at + 8 > s.size()) return false;
    return is_digit(s[at]) && is_digit(s[at + 1]) && s[at + 2] == ':' && is_digit(s[at + 3]) &&
           is_digit(s[at + 4]) && s[at + 5] == ':' && is_digit(s[at + 6]) && is_digit(s[at + 7]);
}

/// Length of a BSD timestamp at the start of `s` ("Mmm dd hh:mm:ss", "Mmm  d hh:mm:ss",
/// "Mmm d hh:mm:ss", optionally with a year "Mmm dd yyyy hh:mm:ss" and ".fff"), or 0.
std::size_t bsd_timestamp_length(std::string_view s) noexcept {
    if (s.size() < 14 || !is_month(s.substr(0, 3)) || s[3] != ' ') return 0;
    std::size_t at = 4;
    if (s[at] == ' ') ++at;  // space-padded day: "Mar  4"
    if (at >= s.size() || !is_digit(s[at])) return 0;
    ++at;
    if (at < s.size() && is_digit(s[at])) ++at;
    if (at >= s.size() || s[at] != ' ') return 0;
    ++at;
    // Some devices (Cisco) put the year between the day and the time.
    if (at + 5 <= s.size() && is_digit(s[at]) && is_digit(s[at + 1]) && is_digit(s[at + 2]) &&
        is_digit(s[at + 3]) && s[at + 4] == ' ')
        at += 5;
    if (!is_clock(s, at)) return 0;
    at += 8;
    if (at < s.size() && s[at] == '.') {  // fractional seconds
        ++at;
        while (at < s.size() && is_digit(s[at])) ++at;
    }
    return at;
}

/// Length of an ISO-8601 timestamp token ("2024-03-14T09:22:03.412Z", "...+01:00"), or 0.
std::size_t iso_timestamp_length(std::string_view s) noexcept {
    if (s.size() < 19 || !is_digit(s[0]) || !is_digit(s[1]) || !is_digit(s[2]) || !is_digit(s[3]) ||
        s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't'))
        return 0;
    return find_space(s, 0);
}

/// RFC 5424 SD: "-" or one or more "[id param=\"value\" ...]" elements. Returns the length
/// consumed, or 0 when malformed. Inside a quoted value, a backslash escapes the next byte,
/// so \" \\ and \] never end the value or the element.
std::size_t structured_data_length(std::string_view s) noexcept {
    if (!s.empty() && s[0] == '-') return 1;
    std::size_t at = 0;
    while (at < s.size() && s[at] == '[') {
        bool quoted = false;
        ++at;
        for (;;) {
            if (at >= s.size()) return 0;  // unterminated element
            const char c = s[at];
            if (quoted && c == '\\') {
                at += 2;
                continue;
            }
            if (c == '"') quoted = !quoted;
            else if (c == ']' && !quoted) break;
            ++at;
        }
        ++at;  // past ']'
    }
    return at;
}

std::string_view nil_to_empty(std::string_view field) noexcept { return field == "-" ? std::string_view{} : field; }

std::string_view strip_bom(std::string_view s) noexcept {
    if (s.starts_with(bom)) s.remove_prefix(bom.size());
    return s;
}

/// "CEF:0|..." starts the message; "CEF: 0|..." is `logger -t CEF`: a tag, then the message.
bool starts_with_cef(std::string_view s) noexcept { return s.starts_with("CEF:") && (s.size() == 4 || s[4] != ' '); }

/// RFC 5424, `rest` starting after "<PRI>". Returns false when the line is not RFC 5424.
bool parse_rfc5424(std::string_view rest, SyslogMessage& out) noexcept {
    // VERSION: 1 to 3 digits, then a space.
    std::size_t at = 0;
    while (at < rest.size() && at < 3 && is_digit(rest[at])) ++at;
    if (at == 0 || rest[0] == '0' || at >= rest.size() || rest[at] != ' ') return false;
    ++at;
    const std::size_t ts_end = find_space(rest, at);
    const std::string_view timestamp = rest.substr(at, ts_end - at);
    if (timestamp != "-" && iso_timestamp_length(timestamp) == 0) return false;
    out.form = SyslogForm::rfc5424;
    out.message = {};  // a header that ends early leaves no message
    out.timestamp = nil_to_empty(timestamp);
    at = ts_end < rest.size() ? ts_end + 1 : ts_end;
    out.after_timestamp = rest.substr(at);

    std::string_view* fields[] = {&out.hostname, &out.app_name, &out.procid, &out.msgid};
    for (std::string_view* field : fields) {
        if (at >= rest.size()) return true;
        // A sender that leaves out the trailing header fields (no NILVALUEs): CEF where a field
        // should be is the message, not an APP-NAME of "CEF:0|Vendor|Product".
        if (starts_with_cef(rest.substr(at))) {
            out.message = rest.substr(at);
            return true;
        }
        const std::size_t end = find_space(rest, at);
        *field = nil_to_empty(rest.substr(at, end - at));
        at = end < rest.size() ? end + 1 : end;
    }
    if (at >= rest.size()) return true;
    const std::size_t sd = structured_data_length(rest.substr(at));
    if (sd == 0) {
        // Malformed SD: keep the rest as the message rather than lose it.
        out.message = strip_bom(rest.substr(at));
        return true;
    }
    out.structured_data = nil_to_empty(rest.substr(at, sd));
    at += sd;
    if (at < rest.size() && rest[at] == ' ') ++at;
    out.message = strip_bom(rest.substr(at));
    return true;
}

/// An IPv6 address as a host ("2001:db8::", "fe80::1"): hex digits, '.' and at least two ':'.
/// One that ends in "::" ends in ':' like a TAG, so take_tag() asks this first.
bool is_ipv6_address(std::string_view token) noexcept {
    std::size_t colons = 0;
    for (const char c : token) {
        if (c == ':') ++colons;
        else if (!is_digit(c) && !(c >= 'a' && c <= 'f') && !(c >= 'A' && c <= 'F') && c != '.') return false;
    }
    return colons >= 2;
}

/// A 3164 TAG token: "name:", "name[pid]:" or "name[pid]". Fills app_name/procid.
bool take_tag(std::string_view token, SyslogMessage& out) noexcept {
    if (is_ipv6_address(token)) return false;
    if (token.ends_with(':')) token.remove_suffix(1);
    else if (!token.ends_with(']')) return false;
    if (token.ends_with(']')) {
        const std::size_t open = token.find('[');
        if (open == std::string_view::npos) return false;
        out.procid = token.substr(open + 1, token.size() - open - 2);
        token = token.substr(0, open);
    }
    out.app_name = token;
    return true;
}

void parse_rfc3164(std::string_view rest, std::size_t ts_length, SyslogMessage& out) noexcept {
    out.form = SyslogForm::rfc3164;
    out.message = {};  // a header that ends early leaves no message
    out.timestamp = rest.substr(0, ts_length);
    std::size_t at = skip_spaces(rest, ts_length);
    out.after_timestamp = rest.substr(at);
    if (starts_with_cef(rest.substr(at))) {
        out.message = rest.substr(at);
        return;
    }
    // HOSTNAME, unless the first token already looks like a tag ("darktrace:", "app[12]").
    std::size_t end = find_space(rest, at);
    std::string_view token = rest.substr(at, end - at);
    // A TAG with the CEF right behind its colon ("darktrace:CEF:0|..."): RFC 3164's TAG ends at
    // the first character that is not alphanumeric, so the message starts after the colon, with
    // no space. Not an IPv6 host with a CEF group (2001:CEF:0:1::5), and the message must start
    // as CEF does ("CEF:0|", not "CEF: 0|", which is a tag of its own).
    const auto glued = [&](std::string_view tag_token) {
        const std::size_t colon = tag_token.find(':');
        if (colon == 0 || colon == std::string_view::npos || is_ipv6_address(tag_token) ||
            !starts_with_cef(rest.substr(at + colon + 1)) || !take_tag(tag_token.substr(0, colon + 1), out))
            return false;
        out.message = rest.substr(at + colon + 1);
        return true;
    };
    if (glued(token)) return;
    if (!take_tag(token, out)) {
        out.hostname = nil_to_empty(token);  // "-": no host, as in RFC 5424 (README: Computer)
        at = skip_spaces(rest, end);
        if (at >= rest.size()) return;
        if (!starts_with_cef(rest.substr(at))) {
            end = find_space(rest, at);
            token = rest.substr(at, end - at);
            if (glued(token)) return;
            if (!take_tag(token, out)) {
                out.message = rest.substr(at);
                return;
            }
        } else {
            out.message = rest.substr(at);
            return;
        }
    }
    // After a tag comes one space (logger writes "CEF: 0|...": the message is "0|...").
    at = skip_spaces(rest, end);
    out.message = rest.substr(at);
}

}  // namespace

SyslogMessage parse_syslog(std::string_view line) noexcept {
    SyslogMessage out;
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r' || line.back() == '\0'))
        line.remove_suffix(1);

    std::string_view rest = line;
    if (rest.size() >= 3 && rest[0] == '<') {
        std::size_t at = 1;
        int pri = 0;
        while (at < rest.size() && at <= 3 && is_digit(rest[at])) pri = pri * 10 + (rest[at++] - '0');
        if (at > 1 && at < rest.size() && rest[at] == '>' && pri <= 191) {
            out.pri = pri;
            rest.remove_prefix(at + 1);
        }
    }
    rest = strip_bom(rest);
    out.message = rest;
    out.after_timestamp = rest;
    if (starts_with_cef(rest)) return out;

    if (out.pri >= 0 && parse_rfc5424(rest, out)) return out;
    if (const std::size_t n = bsd_timestamp_length(rest); n != 0) {
        parse_rfc3164(rest, n, out);
        return out;
    }
    if (const std::size_t n = iso_timestamp_length(rest); n != 0) {
        parse_rfc3164(rest, n, out);
        return out;
    }
    return out;  // form none: all message
}

}  // namespace cefd
