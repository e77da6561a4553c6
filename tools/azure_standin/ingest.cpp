#include "tools/azure_standin/ingest.h"

#include <algorithm>
#include <array>
#include <bitset>
#include <cstring>
#include <ctime>
#include <limits>
#include <optional>

#include "engine/log.h"

namespace cefd::standin {
namespace {

struct RejectInfo {
    std::string_view name;
    int status;
    std::string_view code;
};

// Indexed by Reject. Azure does not publish most of these codes (reference doc, section 7);
// where it does (413 ContentLengthLimitExceeded) the stand-in uses the real one.
constexpr std::array<RejectInfo, reject_count> reject_table{{
    {"none", 204, ""},
    {"outage", 503, "ServiceUnavailable"},
    {"token_missing", 401, "InvalidAuthenticationToken"},
    {"token_unknown", 401, "InvalidAuthenticationToken"},
    {"token_expired", 401, "TokenExpired"},
    {"forbidden_dcr", 403, "OperationFailed"},
    {"unknown_dcr", 404, "NotFound"},
    {"unknown_stream", 404, "InvalidStream"},
    {"bad_api_version", 400, "InvalidApiVersion"},
    {"bad_content_type", 400, "InvalidContentType"},
    {"unsupported_encoding", 400, "UnsupportedContentEncoding"},
    {"body_too_large", 413, "ContentLengthLimitExceeded"},
    {"bad_gzip", 400, "InvalidCompressedData"},
    {"json_too_large", 413, "PayloadSizeLimitExceeded"},
    {"bad_json", 400, "InvalidJson"},
    {"not_array", 400, "InvalidPayloadShape"},
    {"empty_array", 400, "InvalidPayloadShape"},
    {"not_object", 400, "InvalidPayloadShape"},
    {"unknown_column", 400, "InvalidColumn"},
    {"reserved_column", 400, "InvalidColumn"},
    {"duplicate_column", 400, "DuplicateColumn"},
    {"bad_type", 400, "InvalidColumnType"},
}};

// A gzip bomb is decompressed at most this far before it is called too large.
constexpr std::size_t decompressed_hard_cap = 64u << 20;

std::string_view json_type_name(simdjson::ondemand::json_type type) noexcept {
    using simdjson::ondemand::json_type;
    switch (type) {
        case json_type::array: return "array";
        case json_type::object: return "object";
        case json_type::number: return "number";
        case json_type::string: return "string";
        case json_type::boolean: return "boolean";
        case json_type::null: return "null";
    }
    return "?";
}

}  // namespace

std::string_view reject_name(Reject reason) noexcept { return reject_table[static_cast<std::size_t>(reason)].name; }
int reject_status(Reject reason) noexcept { return reject_table[static_cast<std::size_t>(reason)].status; }
std::string_view reject_code(Reject reason) noexcept { return reject_table[static_cast<std::size_t>(reason)].code; }

char* BodyChecker::Buffer::reserve(std::size_t bytes) {
    const std::size_t wanted = bytes + simdjson::SIMDJSON_PADDING;
    if (wanted > capacity) {
        // Grow geometrically: after the first few requests every buffer has its final size.
        const std::size_t grown = std::max(wanted, capacity * 2);
        data = std::make_unique_for_overwrite<char[]>(grown);
        capacity = grown;
    }
    return data.get();
}

BodyChecker::BodyChecker() : decompressor_(libdeflate_alloc_decompressor()) {
    CEFD_ASSERT(decompressor_ != nullptr);
    rows_.reserve(2u << 20);
}

BodyChecker::~BodyChecker() { libdeflate_free_decompressor(decompressor_); }

char* BodyChecker::wire_buffer(std::size_t bytes) { return wire_.reserve(bytes); }

Reject BodyChecker::fail(Reject reason, std::string message) {
    message_ = std::move(message);
    return reason;
}

Reject BodyChecker::check(std::size_t wire_bytes, bool gzip, const Table& table, const BodyLimits& limits) {
    rows_.clear();
    row_count_ = 0;
    json_bytes_ = 0;
    long_values_ = 0;
    times_out_of_range_ = 0;
    message_.clear();
    const char* json = wire_.data.get();
    if (gzip) {
        if (const Reject reason = decompress(wire_bytes, limits); reason != Reject::none) return reason;
        json = json_.data.get();
    } else {
        json_bytes_ = wire_bytes;
    }
    if (json_bytes_ > limits.max_json_bytes) {
        return fail(Reject::json_too_large, "Maximum allowed decompressed content length: " +
                                                std::to_string(limits.max_json_bytes) +
                                                " bytes. Provided: " + std::to_string(json_bytes_) + " bytes.");
    }
    return validate(json, json_bytes_, table,
                    limits.now_unix_s != 0 ? limits.now_unix_s : static_cast<std::int64_t>(std::time(nullptr)));
}

Reject BodyChecker::split_rows(std::size_t wire_bytes, bool gzip, const BodyLimits& limits) {
    rows_.clear();
    row_count_ = 0;
    json_bytes_ = 0;
    long_values_ = 0;  // not looked at here: a checked request's counts must not repeat
    times_out_of_range_ = 0;
    message_.clear();
    const char* json = wire_.data.get();
    if (gzip) {
        if (const Reject reason = decompress(wire_bytes, limits); reason != Reject::none) return reason;
        json = json_.data.get();
    } else {
        json_bytes_ = wire_bytes;
    }
    if (json_bytes_ > limits.max_json_bytes) {
        return fail(Reject::json_too_large, "decompressed body over " + std::to_string(limits.max_json_bytes) + " bytes");
    }
    // One pass over the bytes: depth 1 '{' opens a row, the matching '}' closes it. Whitespace
    // between rows is dropped; inside a row it is kept (cefd sends compact JSON anyway).
    rows_.reserve(json_bytes_ + 1);
    const std::string_view text(json, json_bytes_);
    std::size_t at = text.find_first_not_of(" \t\r\n");
    if (at == std::string_view::npos || text[at] != '[') return fail(Reject::bad_json, "--bench: the body is not an array");
    int depth = 0;
    std::size_t row_start = 0;
    for (++at; at < text.size(); ++at) {
        const char c = text[at];
        if (c == '"') {
            if (depth == 0) return fail(Reject::bad_json, "--bench: an array element is not an object");
            // Strings are most of the bytes: jump to the closing quote with memchr, and step
            // over quotes preceded by an odd number of backslashes (escaped ones).
            for (;;) {
                const void* quote = std::memchr(text.data() + at + 1, '"', text.size() - at - 1);
                if (quote == nullptr) return fail(Reject::bad_json, "--bench: a string is not closed");
                at = static_cast<std::size_t>(static_cast<const char*>(quote) - text.data());
                std::size_t backslashes = 0;
                while (text[at - 1 - backslashes] == '\\') ++backslashes;
                if (backslashes % 2 == 0) break;
            }
        } else if (c == '{' || c == '[') {
            if (depth++ == 0) {
                if (c != '{') return fail(Reject::bad_json, "--bench: an array element is not an object");
                row_start = at;
            }
        } else if (c == '}' || c == ']') {
            if (depth == 0) break;  // the array's own ']'
            if (--depth == 0) {
                rows_.append(text.substr(row_start, at + 1 - row_start));
                rows_.push_back('\n');
                ++row_count_;
            }
        } else if (depth == 0 && c != ',' && c != ' ' && c != '\n' && c != '\t' && c != '\r') {
            return fail(Reject::bad_json, "--bench: an array element is not an object");
        }
    }
    if (depth != 0 || at >= text.size()) return fail(Reject::bad_json, "--bench: the array is not closed");
    if (row_count_ == 0) return fail(Reject::empty_array, "the array holds no rows");
    return Reject::none;
}

Reject BodyChecker::decompress(std::size_t wire_bytes, const BodyLimits& limits) {
    const auto* in = reinterpret_cast<const unsigned char*>(wire_.data.get());
    if (wire_bytes < 18 || in[0] != 0x1f || in[1] != 0x8b) {
        return fail(Reject::bad_gzip, "Content-Encoding is gzip but the body does not start with a gzip header");
    }
    // ISIZE (the last four bytes) sizes the buffer for the usual single-member body.
    std::uint32_t isize = 0;
    std::memcpy(&isize, in + wire_bytes - 4, 4);
    std::size_t capacity = std::min<std::size_t>(std::max<std::size_t>(isize, limits.max_json_bytes + 1),
                                                 decompressed_hard_cap);
    std::size_t in_offset = 0;
    std::size_t out_offset = 0;
    // Bounded: each pass consumes a member or doubles the buffer up to the hard cap.
    for (int pass = 0; pass < 4096 && in_offset < wire_bytes; ++pass) {
        char* out = json_.reserve(capacity);
        std::size_t in_used = 0;
        std::size_t out_got = 0;
        const libdeflate_result result =
            libdeflate_gzip_decompress_ex(decompressor_, in + in_offset, wire_bytes - in_offset, out + out_offset,
                                          capacity - out_offset, &in_used, &out_got);
        switch (result) {
            case LIBDEFLATE_SUCCESS:
                in_offset += in_used;
                out_offset += out_got;
                if (in_offset < wire_bytes && (wire_bytes - in_offset < 18 || in[in_offset] != 0x1f)) {
                    return fail(Reject::bad_gzip, "trailing bytes after the gzip stream");
                }
                break;
            case LIBDEFLATE_INSUFFICIENT_SPACE:
                if (capacity >= decompressed_hard_cap) {
                    json_bytes_ = decompressed_hard_cap;
                    return fail(Reject::json_too_large, "decompressed body exceeds " +
                                                            std::to_string(decompressed_hard_cap) + " bytes");
                }
                // Keep what earlier members produced: copy into the larger buffer.
                {
                    Buffer larger;
                    capacity = std::min(capacity * 2, decompressed_hard_cap);
                    std::memcpy(larger.reserve(capacity), json_.data.get(), out_offset);
                    json_ = std::move(larger);
                }
                break;
            case LIBDEFLATE_BAD_DATA:  // corrupt deflate data, CRC32 or ISIZE mismatch
                return fail(Reject::bad_gzip, "the body is not valid gzip (bad deflate data, CRC or length)");
            case LIBDEFLATE_SHORT_OUTPUT:  // only possible without actual_out; kept for completeness
                return fail(Reject::bad_gzip, "the gzip stream ended early");
        }
    }
    json_bytes_ = out_offset;
    return Reject::none;
}

Reject BodyChecker::validate(const char* json, std::size_t bytes, const Table& table, std::int64_t now_unix_s) {
    using simdjson::ondemand::json_type;
    // Minify first (GB/s) so that each row's raw text is already the compact line we store.
    char* minified = minified_.reserve(bytes);
    std::size_t minified_bytes = 0;
    if (const auto error = simdjson::minify(json, bytes, minified, minified_bytes); error != simdjson::SUCCESS) {
        return fail(Reject::bad_json, std::string("the body is not valid JSON: ") + simdjson::error_message(error));
    }
    simdjson::ondemand::document document;
    if (const auto error = parser_.iterate(minified, minified_bytes, minified_.capacity).get(document)) {
        return fail(Reject::bad_json, std::string("the body is not valid JSON: ") + simdjson::error_message(error));
    }
    json_type type{};
    if (const auto error = document.type().get(type)) {
        return fail(Reject::bad_json, std::string("the body is not valid JSON: ") + simdjson::error_message(error));
    }
    if (type != json_type::array) {
        return fail(Reject::not_array, "the body must be a JSON array of row objects, got a " +
                                           std::string(json_type_name(type)));
    }
    simdjson::ondemand::array array;
    std::string_view array_text;
    bool array_reset = false;
    if (const auto error = document.get_array().get(array)) {
        return fail(Reject::bad_json, std::string("the body is not valid JSON: ") + simdjson::error_message(error));
    }
    // On-Demand stops at the end of the root value; anything after it ("[...] x", "[...][...]")
    // must be refused too. The input is minified, so the array text must be all of it.
    if (array.raw_json().get(array_text) || array.reset().get(array_reset)) {
        return fail(Reject::bad_json, "the body is not a valid JSON array");
    }
    if (array_text.size() != minified_bytes) return fail(Reject::bad_json, "trailing content after the JSON array");
    static_assert(sizeof(std::bitset<256>) <= 64, "per-row seen set stays small");
    std::bitset<256> seen;
    CEFD_ASSERT(table.size() <= seen.size());
    const auto at_row = [&](std::size_t row) { return "row " + std::to_string(row) + ": "; };
    for (auto element : array) {
        const std::size_t row = row_count_;
        simdjson::ondemand::value value;
        json_type element_type{};
        if (const auto error = element.get(value); error || value.type().get(element_type)) {
            return fail(Reject::bad_json, at_row(row) + "not valid JSON");
        }
        if (element_type != json_type::object) {
            return fail(Reject::not_object, at_row(row) + "is a " + std::string(json_type_name(element_type)) +
                                                ", not an object");
        }
        simdjson::ondemand::object object;
        std::string_view raw;
        bool reset_ok = false;
        if (value.get_object().get(object) || object.raw_json().get(raw) || object.reset().get(reset_ok)) {
            return fail(Reject::bad_json, at_row(row) + "not a valid JSON object");
        }
        seen.reset();
        for (auto field : object) {
            std::string_view key;
            if (field.unescaped_key().get(key)) return fail(Reject::bad_json, at_row(row) + "bad key");
            const int index = table.find(key);
            if (index < 0) {
                return fail(Reject::unknown_column,
                            at_row(row) + "'" + std::string(key) + "' is not a column of table " + table.name());
            }
            const ColumnInfo& column = table.column(static_cast<std::size_t>(index));
            if (column.reserved) {
                return fail(Reject::reserved_column,
                            at_row(row) + "column " + column.name + " is filled by the service; do not send it");
            }
            if (seen.test(static_cast<std::size_t>(index))) {
                return fail(Reject::duplicate_column, at_row(row) + "column " + column.name + " appears twice");
            }
            seen.set(static_cast<std::size_t>(index));
            simdjson::ondemand::value field_value = field.value();
            json_type field_type{};
            if (field_value.type().get(field_type)) return fail(Reject::bad_json, at_row(row) + "bad value");
            const auto wrong_type = [&](std::string_view detail) {
                return fail(Reject::bad_type, at_row(row) + "column " + column.name + " is " +
                                                  std::string(column_type_name(column.type)) + ", got " +
                                                  std::string(detail));
            };
            // null is an empty value in any column, as the service takes it.
            if (field_type == json_type::null) continue;
            switch (column.type) {
                case ColumnType::string:
                case ColumnType::datetime: {
                    if (field_type != json_type::string) return wrong_type(json_type_name(field_type));
                    std::string_view text;
                    if (field_value.get_string().get(text)) return fail(Reject::bad_json, at_row(row) + "bad string");
                    if (text.size() > azure_value_bytes_max) ++long_values_;
                    if (column.type == ColumnType::datetime) {
                        const std::optional<std::int64_t> at = iso8601_unix_seconds(text);
                        if (!at) return wrong_type("\"" + std::string(text.substr(0, 64)) + "\" (not ISO-8601)");
                        if (column.name == "TimeGenerated" && (*at < now_unix_s - azure_time_generated_past_s ||
                                                               *at > now_unix_s + azure_time_generated_future_s))
                            ++times_out_of_range_;
                    }
                    break;
                }
                case ColumnType::int_:
                case ColumnType::long_: {
                    if (field_type != json_type::number) return wrong_type(json_type_name(field_type));
                    std::int64_t number = 0;
                    if (const auto error = field_value.get_int64().get(number)) {
                        if (error == simdjson::INCORRECT_TYPE || error == simdjson::NUMBER_OUT_OF_RANGE) {
                            return wrong_type("a number that is not a 64-bit integer");
                        }
                        return fail(Reject::bad_json, at_row(row) + "bad number in column " + column.name);
                    }
                    if (column.type == ColumnType::int_ && (number < std::numeric_limits<std::int32_t>::min() ||
                                                            number > std::numeric_limits<std::int32_t>::max())) {
                        return wrong_type(std::to_string(number) + " (outside 32-bit int)");
                    }
                    break;
                }
                case ColumnType::real: {
                    if (field_type != json_type::number) return wrong_type(json_type_name(field_type));
                    double number = 0;
                    if (field_value.get_double().get(number)) {
                        return fail(Reject::bad_json, at_row(row) + "bad number in column " + column.name);
                    }
                    break;
                }
            }
        }
        rows_.append(raw);
        rows_.push_back('\n');
        ++row_count_;
    }
    if (row_count_ == 0) return fail(Reject::empty_array, "the array holds no rows");
    return Reject::none;
}

}  // namespace cefd::standin
