// tools/azure_standin/ingest.h: the body checks of the Logs Ingestion API, without HTTP.
//
// BodyChecker takes the wire body of one request (gzip or identity), decompresses it with
// libdeflate, validates it with simdjson On-Demand against a table's columns, and on success
// leaves every row as one compact JSON line in rows_jsonl() (ready for a single write(2)).
// Checks run in the order the stand-in documents; the first failure wins and is returned as a
// Reject with a message that names the row and column.
//
// One BodyChecker per thread (it owns reusable buffers and a simdjson parser); not thread-safe.
#pragma once

#include <libdeflate.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "tools/azure_standin/tables.h"

namespace cefd::standin {

/// Why a request was refused. The names are the keys of /stats "rejected".
enum class Reject : std::uint8_t {
    none,
    outage,               // 503 during --outage-s
    token_missing,        // 401: no "Authorization: Bearer"
    token_unknown,        // 401: a token this stand-in never issued
    token_expired,        // 401: issued, but older than its lifetime
    forbidden_dcr,        // 403: --forbid-dcr (the identity lacks Monitoring Metrics Publisher)
    unknown_dcr,          // 404
    unknown_stream,       // 404
    bad_api_version,      // 400: api-version not 2023-01-01 or one of the two previews
    bad_content_type,     // 400: not application/json
    unsupported_encoding, // 400: Content-Encoding other than gzip
    body_too_large,       // 413: wire Content-Length > max_body_bytes
    bad_gzip,             // 400: Content-Encoding gzip, body not valid gzip (header, CRC, length)
    json_too_large,       // 413: decompressed > max_json_bytes
    bad_json,             // 400: not JSON, or trailing bytes after it
    not_array,            // 400: valid JSON but not an array (the real service says 204 and drops it)
    empty_array,          // 400: [] (a batcher that sends nothing has a bug)
    not_object,           // 400: an array element that is not an object
    unknown_column,       // 400: a key that is not a column of the stream's table
    reserved_column,      // 400: a column the service fills (TenantId, _ItemId, ...)
    duplicate_column,     // 400: the same key twice in one row
    bad_type,             // 400: JSON type does not fit the column type
    count_,
};
inline constexpr std::size_t reject_count = static_cast<std::size_t>(Reject::count_);

std::string_view reject_name(Reject reason) noexcept;
/// HTTP status the stand-in answers for `reason`.
int reject_status(Reject reason) noexcept;
/// The Azure-like error code ({"error":{"code":...}}).
std::string_view reject_code(Reject reason) noexcept;

struct BodyLimits {
    std::size_t max_json_bytes = 1'048'576;
    std::int64_t now_unix_s = 0;  // for the TimeGenerated range; 0: the clock
};

/// Azure truncates longer column values, and does not refuse the row (reference: 64 KB).
inline constexpr std::size_t azure_value_bytes_max = 65'536;
/// Azure replaces a TimeGenerated more than 2 days old or more than 1 day ahead with the time it
/// received the row (reference: standard columns).
inline constexpr std::int64_t azure_time_generated_past_s = 2 * 86'400;
inline constexpr std::int64_t azure_time_generated_future_s = 86'400;

class BodyChecker {
public:
    BodyChecker();
    ~BodyChecker();
    BodyChecker(const BodyChecker&) = delete;
    BodyChecker& operator=(const BodyChecker&) = delete;

    /// Space for the wire body: reserve `bytes` (plus simdjson padding) and return it.
    char* wire_buffer(std::size_t bytes);

    /// Checks the body in wire_buffer()[0, wire_bytes). On Reject::none, rows_jsonl() holds
    /// the rows and row_count() how many. Otherwise message() says what was wrong.
    Reject check(std::size_t wire_bytes, bool gzip, const Table& table, const BodyLimits& limits);

    /// --bench's cheap path: decompresses and splits the array into rows_jsonl() by scanning
    /// for top-level objects (strings and nesting respected), without validating JSON or
    /// columns. A body that is not an array of objects is still refused (bad_json).
    Reject split_rows(std::size_t wire_bytes, bool gzip, const BodyLimits& limits);

    [[nodiscard]] std::string_view rows_jsonl() const noexcept { return {rows_.data(), rows_.size()}; }
    [[nodiscard]] std::size_t row_count() const noexcept { return row_count_; }
    [[nodiscard]] std::size_t json_bytes() const noexcept { return json_bytes_; }
    [[nodiscard]] const std::string& message() const noexcept { return message_; }
    /// What Azure would accept but change, in the last check()'s rows (strict checks only):
    /// values over azure_value_bytes_max it would truncate, and TimeGenerated values outside its
    /// window it would replace.
    [[nodiscard]] std::size_t long_values() const noexcept { return long_values_; }
    [[nodiscard]] std::size_t times_out_of_range() const noexcept { return times_out_of_range_; }

private:
    struct Buffer {
        std::unique_ptr<char[]> data;
        std::size_t capacity = 0;
        char* reserve(std::size_t bytes);
    };
    Reject decompress(std::size_t wire_bytes, const BodyLimits& limits);
    Reject validate(const char* json, std::size_t bytes, const Table& table, std::int64_t now_unix_s);
    Reject fail(Reject reason, std::string message);

    libdeflate_decompressor* decompressor_ = nullptr;
    simdjson::ondemand::parser parser_;
    Buffer wire_;
    Buffer json_;
    Buffer minified_;
    std::string rows_;
    std::size_t row_count_ = 0;
    std::size_t json_bytes_ = 0;
    std::size_t long_values_ = 0;
    std::size_t times_out_of_range_ = 0;
    std::string message_;
};

}  // namespace cefd::standin
