// non_cef = "syslog_table": non-CEF syslog lines become rows of the Azure Syslog table
// (stages/parse/README.md, "Syslog table"). One test per column rule.
#include "stages/parse/syslog_table.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "engine/row/row_json.h"
#include "stages/parse/parse.h"

namespace cefd {
namespace {

constexpr std::int64_t march_14_2024_ns = 1'710'409'920'123'456'789;  // 2024-03-14T09:52:00.123Z

class SyslogTableTest : public ::testing::Test {
protected:
    SyslogTableTest() {
        meta_.receive_time_ns = march_14_2024_ns;
        meta_.source.family = AF_INET;
        inet_pton(AF_INET, "192.0.2.200", meta_.source.addr);
    }
    ParseResult parse(std::string_view line) { return parser_.parse(line, meta_, row_); }
    std::string_view get(Column c) const { return row_.get(c); }
    std::set<std::string_view> set_columns() const {
        std::set<std::string_view> names;
        row_.for_each([&](Column c, std::string_view) { names.insert(info(c).name); });
        return names;
    }

    Parser parser_{ParseConfig{.non_cef = ParseConfig::NonCef::syslog_table, .collector_host_name = "collector-test"}};
    MessageMeta meta_;
    Row row_;
};

TEST_F(SyslogTableTest, FillsEveryColumnFromAnRfc3164Line) {
    const ParseResult r = parse("<38>Mar 14 09:15:02 web-01 sshd[2201]: Accepted publickey for root from 192.0.2.9");
    ASSERT_EQ(r.outcome, ParseOutcome::row);
    EXPECT_EQ(row_.table, Table::syslog);
    EXPECT_EQ(get(Column::Computer), "web-01");
    EXPECT_EQ(get(Column::HostName), "web-01");
    EXPECT_EQ(get(Column::HostIP), "192.0.2.200");
    EXPECT_EQ(get(Column::Facility), "auth");  // 38 = 4 * 8 + 6
    EXPECT_EQ(get(Column::SeverityLevel), "info");
    EXPECT_EQ(get(Column::ProcessName), "sshd");
    EXPECT_EQ(get(Column::ProcessID), "2201");
    EXPECT_EQ(get(Column::SyslogMessage), "Accepted publickey for root from 192.0.2.9");
    EXPECT_EQ(get(Column::EventTime), "2024-03-14T09:15:02.000Z");
    EXPECT_EQ(get(Column::CollectorHostName), "collector-test");
    EXPECT_EQ(r.dedupe_text, "web-01 sshd[2201]: Accepted publickey for root from 192.0.2.9");
    EXPECT_EQ(parser_.stats().syslog_rows.load(), 1U);
    EXPECT_EQ(parser_.stats().rows.load(), 0U);
}

TEST_F(SyslogTableTest, SetsOnlySyslogColumns) {
    ASSERT_EQ(parse("<38>Mar 14 09:15:02 web-01 sshd[2201]: hello").outcome, ParseOutcome::row);
    const std::set<std::string_view> expected = {"Computer", "HostName", "HostIP", "Facility", "SeverityLevel",
                                                 "ProcessName", "ProcessID", "SyslogMessage", "EventTime",
                                                 "CollectorHostName"};
    EXPECT_EQ(set_columns(), expected);
    std::string json(row_json_bound(row_), '\0');
    json.resize(static_cast<std::size_t>(write_row_json(row_, json.data()) - json.data()));
    EXPECT_NE(json.find(R"("SyslogMessage":"hello")"), std::string::npos) << json;
    EXPECT_NE(json.find(R"("ProcessID":2201)"), std::string::npos) << json;
    EXPECT_EQ(json.find("AdditionalExtensions"), std::string::npos) << json;
}

TEST_F(SyslogTableTest, NamesEveryFacilityAndSeverity) {
    EXPECT_EQ(syslog_facility_name(0), "kern");
    EXPECT_EQ(syslog_severity_name(0), "emerg");
    EXPECT_EQ(syslog_facility_name(13), "user");
    EXPECT_EQ(syslog_severity_name(13), "notice");
    EXPECT_EQ(syslog_facility_name(86), "authpriv");
    EXPECT_EQ(syslog_severity_name(86), "info");
    EXPECT_EQ(syslog_facility_name(131), "local0");
    EXPECT_EQ(syslog_severity_name(131), "err");
    EXPECT_EQ(syslog_facility_name(191), "local7");
    EXPECT_EQ(syslog_severity_name(191), "debug");
    ASSERT_EQ(parse("<191>Mar 14 09:15:02 host app: x").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::Facility), "local7");
    EXPECT_EQ(get(Column::SeverityLevel), "debug");
}

TEST_F(SyslogTableTest, TakesALineWithoutPriAsUserNotice) {
    ASSERT_EQ(parse("Mar 14 09:15:02 host app: x").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::Facility), "user");
    EXPECT_EQ(get(Column::SeverityLevel), "notice");
}

TEST_F(SyslogTableTest, UsesTheSenderAddressWhenTheHeaderHasNoHost) {
    ASSERT_EQ(parse("<13>Mar 14 09:15:02 app: no host here").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::Computer), "192.0.2.200");
    EXPECT_FALSE(row_.has(Column::HostName));
    EXPECT_EQ(get(Column::HostIP), "192.0.2.200");
    EXPECT_EQ(get(Column::ProcessName), "app");
    EXPECT_FALSE(row_.has(Column::ProcessID));
    EXPECT_EQ(get(Column::SyslogMessage), "no host here");
}

TEST_F(SyslogTableTest, LeavesComputerAndHostIpUnsetWithoutASender) {
    meta_.source = {};
    ASSERT_EQ(parse("just some text").outcome, ParseOutcome::row);
    EXPECT_FALSE(row_.has(Column::Computer));
    EXPECT_FALSE(row_.has(Column::HostIP));
    EXPECT_FALSE(row_.has(Column::EventTime));
    EXPECT_EQ(get(Column::SyslogMessage), "just some text");
}

TEST_F(SyslogTableTest, TakesTheYearNearestTheReceiveTimeForAnRfc3164Timestamp) {
    meta_.receive_time_ns = 1'735'689'610'000'000'000;  // 2025-01-01T00:00:10Z
    ASSERT_EQ(parse("<13>Dec 31 23:59:50 host app: late").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::EventTime), "2024-12-31T23:59:50.000Z");
    meta_.receive_time_ns = 1'735'689'590'000'000'000;  // 2024-12-31T23:59:50Z
    ASSERT_EQ(parse("<13>Jan  1 00:00:05 host app: early").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::EventTime), "2025-01-01T00:00:05.000Z");
}

TEST_F(SyslogTableTest, ConvertsAnRfc5424TimestampToUtc) {
    ASSERT_EQ(parse("<165>1 2024-03-14T10:22:03.412345+01:00 host app 77 - - text").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::EventTime), "2024-03-14T09:22:03.412Z");
    EXPECT_EQ(get(Column::Facility), "local4");
    EXPECT_EQ(get(Column::SeverityLevel), "notice");
    EXPECT_EQ(get(Column::ProcessName), "app");
    EXPECT_EQ(get(Column::ProcessID), "77");
    EXPECT_EQ(get(Column::SyslogMessage), "text");
}

TEST_F(SyslogTableTest, LeavesRfc5424MsgidAndStructuredDataOutOfTheMessage) {
    // Issue 13.3: AMA's rsyslog template forwards only %msg%, so SyslogMessage is the MSG alone
    // (README.md, "Syslog table").
    ASSERT_EQ(parse(R"(<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event)")
                  .outcome,
              ParseOutcome::row);
    EXPECT_EQ(get(Column::SyslogMessage), "An application event");
    ASSERT_EQ(parse(R"(<165>1 2024-03-14T09:22:03Z host app - ID47 [x@1 a="b\]"][y@2 c="d"] text)").outcome,
              ParseOutcome::row);
    EXPECT_EQ(get(Column::SyslogMessage), "text");
    ASSERT_EQ(parse("<165>1 2024-03-14T09:22:03Z host app - ID47 - text").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::SyslogMessage), "text");
    EXPECT_EQ(parser_.stats().empty_syslog_messages.load(), 0U);
}

TEST_F(SyslogTableTest, MakesARowWithAnEmptyMessageForAnRfc5424LineWithoutMsg) {
    // Issue 13.5: RFC 5424 allows every header field NIL and no MSG; it was rejected as empty_message.
    ASSERT_EQ(parse("<13>1 - - - - - -").outcome, ParseOutcome::row);
    EXPECT_TRUE(row_.has(Column::SyslogMessage));
    EXPECT_EQ(get(Column::SyslogMessage), "");
    EXPECT_EQ(get(Column::Facility), "user");
    EXPECT_EQ(get(Column::SeverityLevel), "notice");
    EXPECT_EQ(get(Column::Computer), "192.0.2.200");
    EXPECT_FALSE(row_.has(Column::EventTime));
    EXPECT_FALSE(row_.has(Column::HostName));
    // Structured data alone: not a message either (it is not stored).
    ASSERT_EQ(parse(R"(<165>1 2024-03-14T09:22:03Z host app - - [x@1 a="b"])").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::SyslogMessage), "");
    ASSERT_EQ(parse("<13>1 2024-03-14T09:22:03Z host app 12 ID1 - \xEF\xBB\xBF").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::SyslogMessage), "");
    EXPECT_EQ(parser_.stats().empty_syslog_messages.load(), 3U);
    EXPECT_EQ(parser_.stats().syslog_rows.load(), 3U);
    EXPECT_EQ(parser_.stats().empty_message.load(), 0U);
    std::string json(row_json_bound(row_), '\0');
    json.resize(static_cast<std::size_t>(write_row_json(row_, json.data()) - json.data()));
    EXPECT_NE(json.find(R"("SyslogMessage":"")"), std::string::npos) << json;
}

TEST_F(SyslogTableTest, StillRejectsAnRfc3164LineWithNothingAfterTheHeader) {
    EXPECT_EQ(parse("<13>Mar 14 09:15:02 host ").reason, "empty_message");
    EXPECT_EQ(parser_.stats().empty_message.load(), 1U);
    EXPECT_EQ(parser_.stats().empty_syslog_messages.load(), 0U);
}

TEST_F(SyslogTableTest, GivesAnUnpaddedDayTheSameEventTimeAsThePaddedOne) {
    // Issue 13.4: "Feb 5 07:02:09" gave no EventTime (counted as bad_timestamps).
    meta_.receive_time_ns = 1'796'284'800'000'000'000;  // 2026-12-03T08:00:00Z
    ASSERT_EQ(parse("<13>Feb 5 07:02:09 host app: unpadded").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::EventTime), "2026-02-05T07:02:09.000Z");
    EXPECT_EQ(get(Column::HostName), "host");
    EXPECT_EQ(get(Column::SyslogMessage), "unpadded");
    ASSERT_EQ(parse("<13>Feb  5 07:02:09 host app: padded").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::EventTime), "2026-02-05T07:02:09.000Z");
    EXPECT_EQ(parser_.stats().bad_timestamps.load(), 0U);
}

TEST_F(SyslogTableTest, DatesAnRfc3164LineFromEarlierThisYearToThisYear) {
    // Issue 13.2, with a frozen receive time: 3 December 2026.
    meta_.receive_time_ns = 1'796'284'800'000'000'000;
    ASSERT_EQ(parse("<13>Mar  5 10:00:00 host app: spring").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::EventTime), "2026-03-05T10:00:00.000Z");
}

TEST_F(SyslogTableTest, CountsANonNumericProcIdAndLeavesProcessIdUnset) {
    ASSERT_EQ(parse("<13>Mar 14 09:15:02 host app[worker-3]: x").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::ProcessName), "app");
    EXPECT_FALSE(row_.has(Column::ProcessID));
    EXPECT_EQ(parser_.stats().bad_numbers.load(), 1U);
}

TEST_F(SyslogTableTest, CountsAnUnreadableTimestampAndLeavesEventTimeUnset) {
    ASSERT_EQ(parse("<13>1 2024-13-45T09:22:03Z host app - - - text").outcome, ParseOutcome::row);
    EXPECT_FALSE(row_.has(Column::EventTime));
    EXPECT_EQ(parser_.stats().bad_timestamps.load(), 1U);
}

TEST_F(SyslogTableTest, CutsALongMessageAtFieldBytesMax) {
    Parser parser(ParseConfig{.non_cef = ParseConfig::NonCef::syslog_table, .field_bytes_max = 256});
    const std::string line = "<13>Mar 14 09:15:02 host app: " + std::string(300, 'a');
    ASSERT_EQ(parser.parse(line, meta_, row_).outcome, ParseOutcome::row);
    EXPECT_EQ(row_.get(Column::SyslogMessage), std::string(256, 'a'));
    EXPECT_EQ(parser.stats().truncated_fields.load(), 1U);
}

TEST_F(SyslogTableTest, StillSendsCefToCommonSecurityLog) {
    ASSERT_EQ(parse("<134>Mar 14 09:15:02 dt CEF:0|V|P|1|2|N|3|src=192.0.2.1").outcome, ParseOutcome::row);
    EXPECT_EQ(row_.table, Table::common_security_log);
    EXPECT_EQ(get(Column::SourceIP), "192.0.2.1");
    EXPECT_FALSE(row_.has(Column::SyslogMessage));
    EXPECT_EQ(parser_.stats().rows.load(), 1U);
    EXPECT_EQ(parser_.stats().syslog_rows.load(), 0U);
}

TEST_F(SyslogTableTest, StillRejectsBadCefAndEmptyMessages) {
    EXPECT_EQ(parse("<134>Mar 14 09:15:02 dt CEF:0|short").reason, "bad_cef_header");
    EXPECT_EQ(parse("<134>Mar 14 09:15:02 dt app:   ").reason, "empty_message");
    EXPECT_EQ(parser_.stats().syslog_rows.load(), 0U);
}

TEST_F(SyslogTableTest, ACefRowAfterASyslogRowCarriesNoSyslogColumn) {
    ASSERT_EQ(parse("<13>Mar 14 09:15:02 host app[1]: x").outcome, ParseOutcome::row);
    ASSERT_EQ(parse("<134>Mar 14 09:15:02 dt CEF:0|V|P|1|2|N|3|dvcpid=5").outcome, ParseOutcome::row);
    row_.for_each([](Column c, std::string_view) { EXPECT_TRUE(in_table(c, Table::common_security_log)) << info(c).name; });
}

}  // namespace
}  // namespace cefd
