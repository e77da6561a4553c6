// BodyChecker and the stand-in's tables without HTTP: the column copy, ISO-8601 parsing, and
// multi-member gzip.
#include <libdeflate.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "tools/azure_standin/ingest.h"
#include "tools/azure_standin/tables.h"

namespace {

using namespace cefd::standin;

std::string gzip(const std::string& data) {
    libdeflate_compressor* compressor = libdeflate_alloc_compressor(1);
    std::string out(libdeflate_gzip_compress_bound(compressor, data.size()), '\0');
    out.resize(libdeflate_gzip_compress(compressor, data.data(), data.size(), out.data(), out.size()));
    libdeflate_free_compressor(compressor);
    return out;
}

Reject check(BodyChecker& checker, const std::string& wire, bool gzipped, const Table& table = common_security_log_table()) {
    std::memcpy(checker.wire_buffer(wire.size()), wire.data(), wire.size());
    return checker.check(wire.size(), gzipped, table, BodyLimits{});
}

TEST(StandinTables, CommonSecurityLogCopyHasTheDocumentedColumnsAndTypes) {
    const Table& table = common_security_log_table();
    EXPECT_EQ(table.size(), 164u);
    const auto type_of = [&](const char* name) {
        const int index = table.find(name);
        EXPECT_GE(index, 0) << name;
        return index < 0 ? ColumnType::string : table.column(static_cast<std::size_t>(index)).type;
    };
    EXPECT_EQ(type_of("TimeGenerated"), ColumnType::datetime);
    EXPECT_EQ(type_of("DestinationPort"), ColumnType::int_);
    EXPECT_EQ(type_of("SentBytes"), ColumnType::long_);
    EXPECT_EQ(type_of("DeviceCustomFloatingPoint4"), ColumnType::real);
    EXPECT_EQ(type_of("AdditionalExtensions"), ColumnType::string);
    EXPECT_EQ(table.find("Activty"), -1);
    EXPECT_EQ(table.find(""), -1);
    EXPECT_TRUE(table.column(static_cast<std::size_t>(table.find("TenantId"))).reserved);
    EXPECT_EQ(&table_for_stream("Custom-Syslog"), &syslog_table());
    EXPECT_EQ(&table_for_stream("Microsoft-Syslog"), &syslog_table()) << "any stream ending in -Syslog";
    EXPECT_EQ(&table_for_stream("Custom-CommonSecurityLog"), &common_security_log_table());
}

TEST(StandinTables, Iso8601DatetimesAsLogAnalyticsReadsThem) {
    for (const char* good : {"2026-01-02T03:04:05Z", "2026-01-02T03:04:05.1234567Z", "2026-01-02 03:04:05",
                             "2026-01-02T03:04", "2028-02-29T00:00:00+05:30", "2000-02-29T00:00:00Z",
                             "2026-12-31T23:59:60-01:00"}) {
        EXPECT_TRUE(is_iso8601_datetime(good)) << good;
    }
    for (const char* bad : {"", "2026-01-02", "2026-13-02T03:04:05Z", "2026-01-32T03:04:05Z", "2026-01-02T24:00:00Z",
                            "2026-01-02T03:04:05.Z", "2026-01-02T03:04:05ZZ", "Jan 2 03:04:05", "2026-01-02T03:04:05+5",
                            // Days the calendar does not have: 2023 and 1900 are not leap years.
                            "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-04-31T00:00:00Z"}) {
        EXPECT_FALSE(is_iso8601_datetime(bad)) << bad;
    }
}

// 2023-02-29 passed as a date (February had 29 days in every year). The epoch seconds give the
// TimeGenerated window; zones move the instant. Found in review.
TEST(StandinTables, Iso8601UnixSecondsAreTheInstantInUtc) {
    EXPECT_EQ(iso8601_unix_seconds("1970-01-01T00:00:00Z"), 0);
    EXPECT_EQ(iso8601_unix_seconds("2000-03-01T00:00:00Z"), 951'868'800);
    EXPECT_EQ(iso8601_unix_seconds("2026-12-08T01:02:03.999Z"), 1'796'691'723);
    EXPECT_EQ(iso8601_unix_seconds("2026-12-08T02:02:03+01:00"), 1'796'691'723);
    EXPECT_EQ(iso8601_unix_seconds("2026-12-08 01:02:03"), 1'796'691'723);
    EXPECT_EQ(iso8601_unix_seconds("2023-02-29T00:00:00Z"), std::nullopt);
}

// What the service takes but changes, the stand-in takes and counts: values over 64 KB (Azure
// truncates them) and a TimeGenerated outside 2 days back .. 1 day ahead (Azure replaces it). A
// JSON null is an empty value in any column. Each was refused or passed unremarked. Found in
// review against the reference.
TEST(StandinBodyChecker, CountsWhatAzureWouldTruncateOrReplaceAndTakesNull) {
    BodyChecker checker;
    const std::int64_t now = 1'796'691'723;  // 2026-12-08T01:02:03Z
    const std::string long_value(azure_value_bytes_max + 1, 'x');
    const std::string body = R"([{"TimeGenerated":"2026-12-08T01:00:00Z","Message":")" + long_value + R"("},)" +
                             R"({"TimeGenerated":"2026-12-05T01:00:00Z","Activity":null,"DestinationPort":null},)" +
                             R"({"TimeGenerated":"2026-12-09T02:00:00Z","StartTime":"2020-01-01T00:00:00Z"},)" +
                             R"({"TimeGenerated":"2026-12-06T01:03:00Z","Message":")" +
                             std::string(azure_value_bytes_max, 'y') + R"("}])";
    std::memcpy(checker.wire_buffer(body.size()), body.data(), body.size());
    const BodyLimits limits{.max_json_bytes = 1 << 20, .now_unix_s = now};
    ASSERT_EQ(checker.check(body.size(), false, common_security_log_table(), limits), Reject::none) << checker.message();
    EXPECT_EQ(checker.row_count(), 4u);
    EXPECT_EQ(checker.long_values(), 1u) << "exactly 64 KB is kept whole";
    EXPECT_EQ(checker.times_out_of_range(), 2u) << "3 days back and 25 h ahead; StartTime has no window";
    // --bench's split does not look at values: it reports none, not the last check's (found in
    // review).
    std::memcpy(checker.wire_buffer(body.size()), body.data(), body.size());
    ASSERT_EQ(checker.split_rows(body.size(), false, limits), Reject::none);
    EXPECT_EQ(checker.long_values(), 0u);
    EXPECT_EQ(checker.times_out_of_range(), 0u);
    ASSERT_EQ(checker.check(body.size(), false, common_security_log_table(), limits), Reject::none);
    // The counts are per check.
    const std::string one = R"([{"TimeGenerated":"2026-12-08T01:00:00Z"}])";
    std::memcpy(checker.wire_buffer(one.size()), one.data(), one.size());
    ASSERT_EQ(checker.check(one.size(), false, common_security_log_table(), limits), Reject::none);
    EXPECT_EQ(checker.long_values(), 0u);
    EXPECT_EQ(checker.times_out_of_range(), 0u);
}

TEST(StandinBodyChecker, AcceptsMultiMemberGzipAndReusesBuffers) {
    BodyChecker checker;
    const std::string wire = gzip(R"([{"Activity":"a"},)") + gzip(R"({"Activity":"b"}])");
    ASSERT_EQ(check(checker, wire, true), Reject::none) << checker.message();
    EXPECT_EQ(checker.row_count(), 2u);
    EXPECT_EQ(checker.rows_jsonl(), "{\"Activity\":\"a\"}\n{\"Activity\":\"b\"}\n");
    ASSERT_EQ(check(checker, R"([{"Activity":"c"}])", false), Reject::none);
    EXPECT_EQ(checker.rows_jsonl(), "{\"Activity\":\"c\"}\n");
}

TEST(StandinBodyChecker, NamesRowAndColumnOfTheFirstProblem) {
    BodyChecker checker;
    EXPECT_EQ(check(checker, R"([{"Activity":"a"},{"Activity":"b","ProcessID":"x"}])", false), Reject::bad_type);
    EXPECT_NE(checker.message().find("row 1"), std::string::npos) << checker.message();
    EXPECT_NE(checker.message().find("ProcessID"), std::string::npos) << checker.message();
    EXPECT_EQ(check(checker, R"([{"Activity":"a"}])", true), Reject::bad_gzip);
    EXPECT_EQ(check(checker, R"([{"Activity":"a"}][])", false), Reject::bad_json);
    EXPECT_EQ(check(checker, R"([{"Activity":{"nested":1}}])", false), Reject::bad_type);
}


// ---- --bench: split_rows ---------------------------------------------------------------------

Reject split(BodyChecker& checker, const std::string& wire, bool gzipped) {
    std::memcpy(checker.wire_buffer(wire.size()), wire.data(), wire.size());
    return checker.split_rows(wire.size(), gzipped, BodyLimits{});
}

TEST(StandinBenchSplit, GivesTheSameRowsAsTheFullChecksOnCompactJson) {
    // Braces, brackets and escaped quotes inside strings must not end a row.
    const std::string body = R"([{"Activity":"a \"}{\" b","Message":"[x]","DeviceVendor":"Darktrace\\"},)"
                             R"({"AdditionalExtensions":"cefdseq=r-1;cefdts=5","DestinationPort":443}])";
    BodyChecker strict;
    ASSERT_EQ(check(strict, gzip(body), true), Reject::none) << strict.message();
    BodyChecker bench;
    ASSERT_EQ(split(bench, gzip(body), true), Reject::none) << bench.message();
    EXPECT_EQ(bench.row_count(), 2u);
    EXPECT_EQ(bench.rows_jsonl(), strict.rows_jsonl());
}

TEST(StandinBenchSplit, RefusesWhatIsNotAnArrayOfObjects) {
    BodyChecker checker;
    EXPECT_EQ(split(checker, gzip(R"({"a":1})"), true), Reject::bad_json);
    EXPECT_EQ(split(checker, gzip(R"([1,2])"), true), Reject::bad_json);
    EXPECT_EQ(split(checker, gzip(R"(["a"])"), true), Reject::bad_json);
    EXPECT_EQ(split(checker, gzip(R"([{"a":"unclosed)"), true), Reject::bad_json);
    EXPECT_EQ(split(checker, gzip(R"([{"a":1})"), true), Reject::bad_json);
    EXPECT_EQ(split(checker, gzip("[]"), true), Reject::empty_array);
    EXPECT_EQ(split(checker, "not gzip at all, but long enough", true), Reject::bad_gzip);
}

}  // namespace
