// Fuzz target: the whole Parser::parse() and write_row_json(), as a lane runs them. The JSON is
// written into a heap buffer of exactly row_json_bound() bytes (ASan catches a write past it),
// must pass a structural JSON check, must be valid UTF-8, and must only name columns of the
// row's table.
//
// Input: 5 control bytes, then the message.
//   byte 0  bit 0: non_cef = syslog_table; bit 1: field_bytes_max = 256 (else 32768);
//           bits 2-3: sender none / IPv4 / IPv6 / v4-mapped IPv6; bit 4: message_truncated
//   bytes 1-4  receive time: seconds after 2000-01-01 (up to 2136), little endian
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>

#include "engine/row/row_json.h"
#include "stages/parse/parse.h"
#include "stages/parse/utf8.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

cefd::Parser& parser_for(unsigned variant) {
    // One Parser per configuration, built once: construction allocates the 1.3 MiB scratch.
    static std::unique_ptr<cefd::Parser> parsers[4];
    if (!parsers[variant]) {
        cefd::ParseConfig config;
        config.collector_host_name = "collector";
        config.non_cef = (variant & 1U) != 0 ? cefd::ParseConfig::NonCef::syslog_table : cefd::ParseConfig::NonCef::drop;
        config.field_bytes_max = (variant & 2U) != 0 ? 256 : 32'768;
        parsers[variant] = std::make_unique<cefd::Parser>(config);
    }
    return *parsers[variant];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 5) return 0;
    const unsigned control = data[0];
    std::uint32_t seconds = 0;
    std::memcpy(&seconds, data + 1, 4);
    const std::string_view message(reinterpret_cast<const char*>(data + 5), size - 5);

    cefd::MessageMeta meta;
    meta.receive_time_ns = (946'684'800LL + static_cast<std::int64_t>(seconds)) * 1'000'000'000LL + 123'456'789;
    meta.length = static_cast<std::uint32_t>(message.size());
    switch ((control >> 2) & 3U) {
        case 0: break;
        case 1:
            meta.source.family = AF_INET;
            meta.source.addr[0] = 192;
            meta.source.addr[3] = 7;
            break;
        case 2:
            meta.source.family = AF_INET6;
            meta.source.addr[0] = 0x20;
            meta.source.addr[1] = 0x01;
            meta.source.addr[15] = 1;
            break;
        case 3:
            meta.source.family = AF_INET6;
            meta.source.addr[10] = 0xFF;
            meta.source.addr[11] = 0xFF;
            meta.source.addr[12] = 10;
            break;
    }
    if ((control & 16U) != 0) meta.flags = cefd::message_truncated;

    static cefd::Row row;
    const cefd::ParseResult result = parser_for(control & 3U).parse(message, meta, row);
    if (result.outcome != cefd::ParseOutcome::row) {
        CEFD_FUZZ_CHECK(!result.reason.empty(), message);
        return 0;
    }
    CEFD_FUZZ_CHECK(result.reason.empty(), message);
    CEFD_FUZZ_CHECK(row.has(cefd::Column::CollectorHostName), message);
    // A Syslog row always has SyslogMessage, empty when an RFC 5424 line has no MSG; every other
    // set column has a value.
    CEFD_FUZZ_CHECK(row.table != cefd::Table::syslog || row.has(cefd::Column::SyslogMessage), message);
    row.for_each([&](cefd::Column column, std::string_view value) {
        CEFD_FUZZ_CHECK(cefd::in_table(column, row.table), cefd::info(column).name);
        CEFD_FUZZ_CHECK(!value.empty() || column == cefd::Column::SyslogMessage, cefd::info(column).name);
    });

    const std::size_t bound = cefd::row_json_bound(row);
    const std::unique_ptr<char[]> out(new char[bound]);
    const char* end = cefd::write_row_json(row, out.get());
    const auto written = static_cast<std::size_t>(end - out.get());
    CEFD_FUZZ_CHECK(written <= bound, message);
    const std::string_view json(out.get(), written);
    cefd::fuzz::JsonRowChecker checker(json);
    if (const char* why = checker.check(); why != nullptr) cefd::fuzz::fail(why, json);
    CEFD_FUZZ_CHECK(cefd::is_valid_utf8(json), json);
    return 0;
}
