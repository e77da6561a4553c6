#include "stages/parse/parse.h"

#include <unistd.h>

#include <climits>
#include <cstring>

#include "engine/log.h"
#include "stages/parse/cef.h"
#include "stages/parse/mapping.h"
#include "stages/parse/syslog.h"
#include "stages/parse/syslog_table.h"
#include "stages/parse/utf8.h"

namespace cefd {

void ParseConfig::validate(ConfigErrors& errors) const {
    // 256: room for any header field; 65536: the largest field value Azure documents keeping.
    errors.check_range<std::uint32_t>("parse.field_bytes_max", field_bytes_max, 256, 65'536);
    errors.check("parse.collector_host_name", collector_host_name.size() <= 255,
                 "must be at most 255 bytes (a DNS name)");
}

/// The per-lane scratch memory: two bump regions, reset per message, never grown.
///   arena:      repaired UTF-8 copy of the message (<= 3x), unescaped values (<= 1x in total),
///               unescaped header fields (<= 1x), Computer from the sender address, ISO times.
///   extensions: AdditionalExtensions. Every pair costs at most its raw text plus the one
///               separator it replaces, so it never exceeds the (repaired) message.
struct Parser::Scratch {
    static constexpr std::size_t repaired_max = 3 * parse_message_bytes_max;
    static constexpr std::size_t arena_bytes = repaired_max + 2 * repaired_max + 4096;
    static constexpr std::size_t extensions_bytes = repaired_max + 64;

    std::unique_ptr<char[]> arena{new char[arena_bytes]};
    std::size_t arena_used = 0;
    std::unique_ptr<char[]> extensions{new char[extensions_bytes]};
    std::size_t extensions_used = 0;

    void reset() noexcept {
        arena_used = 0;
        extensions_used = 0;
    }
    char* take(std::size_t n) noexcept {
        CEFD_ASSERT(arena_used + n <= arena_bytes);  // the bound above is wrong if this fires
        char* p = arena.get() + arena_used;
        arena_used += n;
        return p;
    }
    /// Gives back the unused tail of the last take().
    void give_back(std::size_t n) noexcept { arena_used -= n; }

    /// The sender's address as text. inet_ntop formats IPv4 with sprintf, which was 8% of the
    /// instructions per WithSecure row (callgrind); a lane sees the same few senders over and
    /// over, so the text of the last one is kept (not reset per message). Port is ignored.
    std::string_view sender_text(const SourceAddress& source) noexcept {
        if (source.family == 0) return {};
        if (source.family != sender_family || std::memcmp(source.addr, sender_addr, sizeof(sender_addr)) != 0) {
            sender_size = source.format(sender);
            sender_family = source.family;
            std::memcpy(sender_addr, source.addr, sizeof(sender_addr));
        }
        return {sender, sender_size};
    }
    char sender[64] = {};
    std::size_t sender_size = 0;
    std::uint8_t sender_family = 0;
    std::uint8_t sender_addr[16] = {};

    /// Appends "key=value" (value unescaped), with ';' before every pair but the first.
    void append_extension(std::string_view key, std::string_view raw_value) noexcept {
        CEFD_ASSERT(extensions_used + key.size() + raw_value.size() + 2 <= extensions_bytes);
        char* out = extensions.get() + extensions_used;
        if (extensions_used != 0) *out++ = ';';
        std::memcpy(out, key.data(), key.size());
        out += key.size();
        *out++ = '=';
        out += unescape_cef_value(raw_value, out);
        extensions_used = static_cast<std::size_t>(out - extensions.get());
    }
    void append_text(std::string_view text) noexcept {
        CEFD_ASSERT(extensions_used + text.size() + 1 <= extensions_bytes);
        char* out = extensions.get() + extensions_used;
        if (extensions_used != 0) *out++ = ';';
        std::memcpy(out, text.data(), text.size());
        extensions_used = static_cast<std::size_t>(out + text.size() - extensions.get());
    }
};

namespace {

std::string host_name() {
    char buffer[256] = {};
    if (gethostname(buffer, sizeof(buffer) - 1) != 0) return "localhost";
    return buffer;
}

bool is_blank(std::string_view text) noexcept {
    for (const char c : text)
        if (c != ' ' && c != '\t') return false;
    return true;
}

constexpr std::int64_t max_iso_ms = 253'402'300'799'999;  // 9999-12-31T23:59:59.999Z

}  // namespace

Parser::Parser(const ParseConfig& config)
    : config_(config),
      collector_host_name_(config.collector_host_name.empty() ? host_name() : config.collector_host_name),
      scratch_(std::make_unique<Scratch>()) {}

Parser::~Parser() = default;

ParseResult Parser::parse(std::string_view message, const MessageMeta& meta, Row& row,
                          ParseObserver* observer) {
    row.clear();
    row.receive_time_ns = meta.receive_time_ns;
    row.table = Table::common_security_log;
    Scratch& scratch = *scratch_;
    scratch.reset();

    if ((meta.flags & message_truncated) != 0) bump(stats_.truncated_messages);
    if (message.size() > parse_message_bytes_max) [[unlikely]] {
        bump(stats_.oversize_messages);
        CEFD_LOG_EVERY(10, warn, "parse: message of %zu bytes cut to %zu (oversize_messages)", message.size(),
                       parse_message_bytes_max);
        message = message.substr(0, parse_message_bytes_max);
    }
    if (!is_valid_utf8(message)) [[unlikely]] {
        bump(stats_.invalid_utf8);
        CEFD_LOG_EVERY(10, warn, "parse: invalid UTF-8 repaired with U+FFFD (invalid_utf8)");
        char* out = scratch.take(3 * message.size());
        const std::size_t n = repair_utf8(message, out);
        scratch.give_back(3 * message.size() - n);
        message = {out, n};
    }

    const SyslogMessage syslog = parse_syslog(message);
    ParseResult result;
    result.dedupe_text = syslog.after_timestamp;
    if (observer != nullptr) observer->on_dedupe_text(result.dedupe_text);

    // Where the CEF text starts: right after the header; after a "CEF" tag ("CEF: 0|..."); or,
    // behind a prefix we do not know (a relay's, or Kaspersky's "Oct 30, 2021 ..."), at " CEF:".
    std::string_view cef_text;
    const std::string_view body = syslog.message;
    if (body.starts_with("CEF:")) {
        cef_text = body;
    } else if (syslog.app_name == "CEF" && !body.empty() && body[0] >= '0' && body[0] <= '9') {
        cef_text = body;
    } else if (const std::size_t at = body.find(" CEF:"); at != std::string_view::npos) {
        cef_text = body.substr(at + 1);
    }
    if (cef_text.empty()) {
        const bool to_syslog_table = config_.non_cef == ParseConfig::NonCef::syslog_table;
        // RFC 5424 allows a message with no MSG (§6: "[SP MSG]"), so for the Syslog table it is
        // a row with an empty SyslogMessage, counted; an RFC 3164 header alone stays a reject.
        if (is_blank(body) && !(to_syslog_table && syslog.form == SyslogForm::rfc5424)) {
            bump(stats_.empty_message);
            CEFD_LOG_EVERY(10, warn, "parse: message with nothing after the syslog header (empty_message)");
            result.outcome = ParseOutcome::rejected;
            result.reason = "empty_message";
            return result;
        }
        if (to_syslog_table) {
            fill_syslog_row(syslog, meta, row);
            result.outcome = ParseOutcome::row;
            return result;
        }
        bump(stats_.not_cef);
        CEFD_LOG_EVERY(10, info, "parse: non-CEF message dropped (not_cef)");
        result.outcome = ParseOutcome::dropped_not_cef;
        result.reason = "not_cef";
        return result;
    }

    CefHeader header;
    if (parse_cef_header(cef_text, header) != CefStatus::ok) {
        bump(stats_.bad_cef_header);
        CEFD_LOG_EVERY(10, warn, "parse: CEF header with fewer than 7 fields or a bad version (bad_cef_header)");
        result.outcome = ParseOutcome::rejected;
        result.reason = "bad_cef_header";
        return result;
    }

    std::uint64_t truncated = 0;
    const std::size_t field_max = config_.field_bytes_max;
    const auto set_text = [&](Column column, std::string_view value) noexcept {
        if (value.empty()) return;
        if (value.size() > field_max) [[unlikely]] {
            value = utf8_prefix(value, field_max);
            ++truncated;
        }
        row.set(column, value);
    };
    const auto set_header = [&](Column column, std::string_view raw) noexcept {
        if (has_backslash(raw)) {
            char* out = scratch.take(raw.size());
            const std::size_t n = unescape_cef_header(raw, out);
            scratch.give_back(raw.size() - n);
            raw = {out, n};
        }
        set_text(column, raw);
    };
    set_header(Column::DeviceVendor, header.vendor);
    set_header(Column::DeviceProduct, header.product);
    set_header(Column::DeviceVersion, header.device_version);
    set_header(Column::DeviceEventClassID, header.signature_id);
    set_header(Column::Activity, header.name);
    set_header(Column::LogSeverity, header.severity);

    if (!syslog.hostname.empty()) {
        set_text(Column::Computer, syslog.hostname);
    } else {
        set_text(Column::Computer, scratch.sender_text(meta.source));
    }
    set_text(Column::CollectorHostName, collector_host_name_);

    CefExtensionReader reader(header.extension);
    if (!reader.leading_text().empty()) [[unlikely]] {
        bump(stats_.stray_extension_text);
        CEFD_LOG_EVERY(10, warn, "parse: extension text before the first key= kept in AdditionalExtensions "
                                 "(stray_extension_text)");
        scratch.append_text(reader.leading_text());
    }
    const std::int64_t now_ms = meta.receive_time_ns / 1'000'000;
    std::uint64_t bad_numbers = 0;
    std::uint64_t bad_timestamps = 0;
    CefPair pair;
    while (reader.next(pair)) {
        const std::optional<Column> column = column_for_cef_key(pair.key);
        if (!column || row.has(*column)) {  // unmapped, or a repeated key: keep it, in order
            scratch.append_extension(pair.key, pair.value);
            continue;
        }
        if (is_blank(pair.value)) continue;  // only non-empty columns are set
        switch (info(*column).type) {
            case ColumnType::string: {
                std::string_view value = pair.value;
                if (pair.value_has_backslash) {
                    char* out = scratch.take(value.size());
                    const std::size_t n = unescape_cef_value(value, out);
                    scratch.give_back(value.size() - n);
                    value = {out, n};
                }
                set_text(*column, value);
                break;
            }
            case ColumnType::int_:
            case ColumnType::long_: {
                const bool is_long = info(*column).type == ColumnType::long_;
                const std::string_view number =
                    is_long ? checked_integer(pair.value, INT64_MIN, INT64_MAX) : checked_integer(pair.value, INT32_MIN, INT32_MAX);
                if (number.empty()) {
                    ++bad_numbers;
                    scratch.append_extension(pair.key, pair.value);
                } else {
                    row.set(*column, number);
                }
                break;
            }
            case ColumnType::real: {
                const std::string_view number = checked_real(pair.value);
                if (number.empty()) {
                    ++bad_numbers;
                    scratch.append_extension(pair.key, pair.value);
                } else {
                    row.set(*column, number);
                }
                break;
            }
            case ColumnType::datetime: {
                const std::optional<std::int64_t> ms = parse_cef_time_ms(pair.value, now_ms);
                if (!ms || *ms < 0 || *ms > max_iso_ms) {
                    ++bad_timestamps;
                    scratch.append_extension(pair.key, pair.value);
                } else {
                    char* out = scratch.take(24);
                    row.set(*column, {out, format_iso_ms(*ms, out)});
                }
                break;
            }
        }
    }
    if (scratch.extensions_used != 0) {
        // extensions_bytes has room for this one byte past the message (see Scratch).
        if (config_.additional_extensions_trailing_separator) scratch.extensions[scratch.extensions_used++] = ';';
        set_text(Column::AdditionalExtensions, {scratch.extensions.get(), scratch.extensions_used});
    }

    // Counters once per message, logs rate-limited: these can happen on every message.
    if (bad_numbers != 0) [[unlikely]] {
        bump(stats_.bad_numbers, bad_numbers);
        CEFD_LOG_EVERY(10, warn, "parse: non-numeric value for a number column kept in AdditionalExtensions "
                                 "(bad_numbers)");
    }
    if (bad_timestamps != 0) [[unlikely]] {
        bump(stats_.bad_timestamps, bad_timestamps);
        CEFD_LOG_EVERY(10, warn, "parse: unreadable start/end time kept in AdditionalExtensions (bad_timestamps)");
    }
    if (truncated != 0) [[unlikely]] {
        bump(stats_.truncated_fields, truncated);
        CEFD_LOG_EVERY(10, warn, "parse: value over %zu bytes cut (truncated_fields)", field_max);
    }
    bump(stats_.rows);
    result.outcome = ParseOutcome::row;
    return result;
}

void Parser::fill_syslog_row(const SyslogMessage& syslog, const MessageMeta& meta, Row& row) {
    Scratch& scratch = *scratch_;
    row.table = Table::syslog;
    std::uint64_t truncated = 0;
    const std::size_t field_max = config_.field_bytes_max;
    const auto set_text = [&](Column column, std::string_view value) noexcept {
        if (value.empty()) return;
        if (value.size() > field_max) [[unlikely]] {
            value = utf8_prefix(value, field_max);
            ++truncated;
        }
        row.set(column, value);
    };

    const std::string_view sender = scratch.sender_text(meta.source);
    set_text(Column::Computer, syslog.hostname.empty() ? sender : syslog.hostname);
    set_text(Column::HostName, syslog.hostname);
    set_text(Column::HostIP, sender);
    set_text(Column::CollectorHostName, collector_host_name_);

    // RFC 3164 §4.3.3: a message without PRI is treated as <13>, user.notice.
    const int pri = syslog.pri >= 0 ? syslog.pri : 13;
    row.set(Column::Facility, syslog_facility_name(pri));
    row.set(Column::SeverityLevel, syslog_severity_name(pri));

    set_text(Column::ProcessName, syslog.app_name);
    bool bad_number = false;
    if (!syslog.procid.empty()) {
        const std::string_view pid = checked_integer(syslog.procid, 0, INT32_MAX);
        if (pid.empty()) bad_number = true;
        else row.set(Column::ProcessID, pid);
    }

    bool bad_timestamp = false;
    if (!syslog.timestamp.empty()) {
        const std::optional<std::int64_t> ms = parse_cef_time_ms(syslog.timestamp, meta.receive_time_ns / 1'000'000);
        if (!ms || *ms < 0 || *ms > max_iso_ms) {
            bad_timestamp = true;
        } else {
            char* out = scratch.take(24);
            row.set(Column::EventTime, {out, format_iso_ms(*ms, out)});
        }
    }

    // The MSG alone, without MSGID and STRUCTURED-DATA: what AMA stores (README.md).
    if (is_blank(syslog.message)) {
        row.set(Column::SyslogMessage, {});
        bump(stats_.empty_syslog_messages);
    } else {
        set_text(Column::SyslogMessage, syslog.message);
    }

    if (bad_number) [[unlikely]] {
        bump(stats_.bad_numbers);
        CEFD_LOG_EVERY(10, warn, "parse: non-numeric syslog PROCID not sent as ProcessID (bad_numbers)");
    }
    if (bad_timestamp) [[unlikely]] {
        bump(stats_.bad_timestamps);
        CEFD_LOG_EVERY(10, warn, "parse: unreadable syslog timestamp not sent as EventTime (bad_timestamps)");
    }
    if (truncated != 0) [[unlikely]] {
        bump(stats_.truncated_fields, truncated);
        CEFD_LOG_EVERY(10, warn, "parse: value over %zu bytes cut (truncated_fields)", field_max);
    }
    bump(stats_.syslog_rows);
}

void Parser::register_metrics(MetricsRegistry& registry, const std::string& labels) const {
    struct Entry {
        std::string_view name;
        std::string_view help;
        const Counter* counter;
    };
    const Entry entries[] = {
        {"parse_rows_total", "Messages that became a CommonSecurityLog row.", &stats_.rows},
        {"parse_syslog_rows_total", "Non-CEF messages routed to the Syslog table.", &stats_.syslog_rows},
        {"parse_not_cef_total", "Non-CEF messages dropped (non_cef = drop).", &stats_.not_cef},
        {"parse_bad_cef_header_total", "Messages rejected: CEF header short or bad version.", &stats_.bad_cef_header},
        {"parse_empty_message_total", "Messages rejected: nothing after the syslog header.", &stats_.empty_message},
        {"parse_empty_syslog_messages_total", "RFC 5424 Syslog rows sent with an empty SyslogMessage (no MSG).",
         &stats_.empty_syslog_messages},
        {"parse_invalid_utf8_total", "Messages with invalid UTF-8, repaired with U+FFFD.", &stats_.invalid_utf8},
        {"parse_truncated_fields_total", "Values cut at field_bytes_max.", &stats_.truncated_fields},
        {"parse_bad_numbers_total", "Number values kept in AdditionalExtensions.", &stats_.bad_numbers},
        {"parse_bad_timestamps_total", "start/end values kept in AdditionalExtensions.", &stats_.bad_timestamps},
        {"parse_truncated_messages_total", "Messages the receiver cut.", &stats_.truncated_messages},
        {"parse_oversize_messages_total", "Messages over 64 KiB, cut and parsed.", &stats_.oversize_messages},
        {"parse_stray_extension_text_total", "Extension text before the first key.", &stats_.stray_extension_text},
    };
    for (const Entry& e : entries) registry.add(e.name, e.help, labels, e.counter);
}

}  // namespace cefd
