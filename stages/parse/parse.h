// stages/parse/parse.h: turns one syslog message (RFC 3164, RFC 5424 or bare CEF) into one
// CommonSecurityLog Row (engine/row/row.h), or, with non_cef = "syslog_table", a non-CEF message
// into one Syslog-table Row. The same Parser serves the pipeline's workers and
// `cefd parse`, so what `cefd parse` prints is exactly what cefd sends.
//
// Lifecycle: one Parser per lane, owned by the lane's worker thread (and one in `cefd parse`).
// Not thread-safe. parse() never allocates: unescaped values, AdditionalExtensions and ISO
// timestamps go into a scratch arena sized at construction and reset per message. The Row's
// views point into `message` and that arena, so they are valid until the next parse() call and
// only while `message` is alive.
//
// Outcomes are counted in ParseStats, one counter per reason; see README.md for the rules
// (Computer, AdditionalExtensions, numbers, timestamps, escapes, UTF-8, truncation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "engine/config/config_errors.h"
#include "engine/metrics/metrics.h"
#include "engine/record.h"
#include "engine/row/row.h"

namespace cefd {

struct SyslogMessage;

/// Longest message parsed. Longer input (only possible from TCP frames or `cefd parse`) is cut
/// here and counted as `oversize_messages`; the scratch arena is sized from this.
inline constexpr std::size_t parse_message_bytes_max = 65'536;

struct ParseConfig {
    enum class NonCef : std::uint8_t { drop, syslog_table };
    /// What to do with a syslog line that is not CEF: drop it (counted as `not_cef`) or send
    /// it to the Syslog table's stream.
    NonCef non_cef = NonCef::drop;
    /// CollectorHostName on every row. Empty: this machine's host name (gethostname).
    std::string collector_host_name;
    /// Longest column value kept. Longer values are cut at a UTF-8 boundary and counted
    /// (`truncated_fields`). 32 KiB: the smaller of the two figures Microsoft documents.
    /// Between 256 and 65536.
    std::uint32_t field_bytes_max = 32'768;
    /// End AdditionalExtensions with a ';'. Off: the format seen in Microsoft's stored rows
    /// (pairs joined by ';', none after the last). On: the Darktrace workbook's
    /// `parse AdditionalExtensions with * "darktraceUrl=" X ";" ...` also finds the last pair
    /// (see README.md, "AdditionalExtensions and the workbook").
    bool additional_extensions_trailing_separator = false;

    void validate(ConfigErrors& errors) const;
};

struct ParseStats {
    Counter rows{0};              // messages that became a CommonSecurityLog row
    Counter syslog_rows{0};       // non-CEF messages that became a Syslog row (non_cef = "syslog_table")
    Counter not_cef{0};           // non-CEF messages dropped (non_cef = "drop")
    Counter bad_cef_header{0};    // "CEF:" present but fewer than 7 header fields, or bad version
    Counter empty_message{0};     // nothing after the syslog header
    Counter empty_syslog_messages{0};  // RFC 5424 Syslog rows with no MSG: sent with an empty SyslogMessage
    Counter invalid_utf8{0};      // messages with invalid UTF-8, repaired with U+FFFD
    Counter truncated_fields{0};  // values cut at field_bytes_max
    Counter bad_numbers{0};       // int/long/real keys whose value was not a number (kept in AdditionalExtensions);
                                  // on Syslog rows, a non-numeric PROCID (ProcessID not sent)
    Counter bad_timestamps{0};    // start/end values that could not be read as a time (kept in AdditionalExtensions);
                                  // on Syslog rows, a syslog timestamp that could not be read (EventTime not sent)
    Counter truncated_messages{0};  // messages the receiver had to cut (TCP frames over max_frame_bytes)
    Counter oversize_messages{0};   // messages over parse_message_bytes_max, cut there and parsed
    Counter stray_extension_text{0};  // extension text before the first key=, kept in AdditionalExtensions
};

enum class ParseOutcome : std::uint8_t {
    row,             // `row` is filled (for row.table); send it
    dropped_not_cef, // counted; nothing to send
    rejected,        // counted under its reason; nothing to send. `reason` says which.
};

struct ParseResult {
    ParseOutcome outcome = ParseOutcome::rejected;
    /// For rejected/dropped messages: the counter's name ("bad_cef_header", "not_cef", ...).
    std::string_view reason;
    /// The message after the syslog timestamp: what the dedupe stage hashes.
    std::string_view dedupe_text;
};

/// Told the dedupe text as soon as the syslog header is read, before the CEF work: the worker
/// starts fetching the dedupe table's entry then, so the fetch overlaps the row's construction.
class ParseObserver {
public:
    virtual void on_dedupe_text(std::string_view text) noexcept = 0;

protected:
    ~ParseObserver() = default;
};

class Parser {
public:
    explicit Parser(const ParseConfig& config);
    ~Parser();
    Parser(const Parser&) = delete;
    Parser& operator=(const Parser&) = delete;

    /// Parses `message` received with `meta` into `row` (cleared first). `observer`, if given,
    /// hears the dedupe text (the same as ParseResult::dedupe_text) once the header is read.
    ParseResult parse(std::string_view message, const MessageMeta& meta, Row& row,
                      ParseObserver* observer = nullptr);

    [[nodiscard]] const ParseStats& stats() const noexcept { return stats_; }
    /// Registers every counter with the given labels (e.g. lane="0").
    void register_metrics(MetricsRegistry& registry, const std::string& labels) const;

private:
    struct Scratch;
    /// non_cef = "syslog_table": fills `row` as a Syslog-table row (README.md).
    void fill_syslog_row(const SyslogMessage& syslog, const MessageMeta& meta, Row& row);
    ParseConfig config_;
    std::string collector_host_name_;
    std::unique_ptr<Scratch> scratch_;
    ParseStats stats_;
};

}  // namespace cefd
