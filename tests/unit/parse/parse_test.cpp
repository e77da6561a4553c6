// Parser: the whole path from a syslog line to a Row, one test per edge case, plus every line of
// the synthetic Darktrace file against its expected important columns.
#include "stages/parse/parse.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/support.h"

namespace cefd {
namespace {

MessageMeta meta_from(const char* ipv4 = "192.0.2.200") {
    MessageMeta meta;
    meta.receive_time_ns = 1'710'409'920'123'456'789;  // 2024-03-14T09:52:00.123456789Z
    meta.source.family = AF_INET;
    inet_pton(AF_INET, ipv4, meta.source.addr);
    return meta;
}

class ParserTest : public ::testing::Test {
protected:
    // The row's views point into the line, so the fixture keeps the line alive until the next parse.
    ParseResult parse(std::string_view line) {
        line_ = std::string(line);
        return parser_.parse(line_, meta_, row_);
    }
    std::string line_;
    std::string_view get(Column c) const { return row_.get(c); }

    ParseConfig config_{.collector_host_name = "collector-test"};
    Parser parser_{config_};
    MessageMeta meta_ = meta_from();
    Row row_;
};

constexpr std::string_view header = "CEF:0|Darktrace|Enterprise Immune System|6.1|26|Name|7|";

TEST_F(ParserTest, FillsHeaderColumnsAsSent) {
    ASSERT_EQ(parse("CEF:0|Darktrace|Enterprise Immune System|6.1|26|Compliance/Tor|Very-High|dvc=192.0.2.1").outcome,
              ParseOutcome::row);
    EXPECT_EQ(get(Column::DeviceVendor), "Darktrace");
    EXPECT_EQ(get(Column::DeviceProduct), "Enterprise Immune System");
    EXPECT_EQ(get(Column::DeviceVersion), "6.1");
    EXPECT_EQ(get(Column::DeviceEventClassID), "26");
    EXPECT_EQ(get(Column::Activity), "Compliance/Tor");
    EXPECT_EQ(get(Column::LogSeverity), "Very-High");
    EXPECT_EQ(get(Column::CollectorHostName), "collector-test");
    EXPECT_EQ(row_.receive_time_ns, meta_.receive_time_ns);
    EXPECT_EQ(parser_.stats().rows.load(), 1U);
}

// The observer hears the dedupe text before the row is built, and it is the result's, for
// rows, rejects and invalid UTF-8 (whose text is the repaired copy) alike.
TEST_F(ParserTest, ObserverHearsTheDedupeTextOnceBeforeTheRowIsBuilt) {
    struct Heard final : ParseObserver {
        void on_dedupe_text(std::string_view text) noexcept override {
            texts.emplace_back(text);
            row_was_empty.push_back(row->get(Column::DeviceVendor).empty());
        }
        const Row* row = nullptr;
        std::vector<std::string> texts;
        std::vector<bool> row_was_empty;
    } heard;
    heard.row = &row_;
    for (const std::string& line : {std::string("<134>Nov 29 07:00:37 dt-master ") + std::string(header) + "dvc=192.0.2.1",
                                   std::string("<134>Nov 29 07:00:37 dt-master not CEF at all"),
                                   std::string("<134>Nov 29 07:00:37 dt-master \xff") + std::string(header)}) {
        heard.texts.clear();
        heard.row_was_empty.clear();
        line_ = line;
        const ParseResult result = parser_.parse(line_, meta_, row_, &heard);
        ASSERT_EQ(heard.texts.size(), 1U) << line;
        EXPECT_EQ(heard.texts[0], result.dedupe_text) << line;
        EXPECT_TRUE(heard.row_was_empty[0]) << line;
        EXPECT_TRUE(heard.texts[0].starts_with("dt-master ")) << heard.texts[0];
    }
}

TEST_F(ParserTest, SetsComputerFromHeaderHostname) {
    ASSERT_EQ(parse("<134>Mar 14 09:15:02 dt-master-01 " + std::string(header)).outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::Computer), "dt-master-01");
}

TEST_F(ParserTest, SetsComputerFromSenderAddressWithoutHeaderHostname) {
    ASSERT_EQ(parse(header).outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::Computer), "192.0.2.200");
    ASSERT_EQ(parse("<134>1 2024-03-14T09:22:03Z - app - - - " + std::string(header)).outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::Computer), "192.0.2.200");
}

TEST_F(ParserTest, SetsComputerFromEachSenderInTurn) {
    // The parser keeps the text of the last sender's address; a new sender must replace it.
    for (const char* address : {"192.0.2.1", "192.0.2.2", "192.0.2.2", "198.51.100.77", "192.0.2.1"}) {
        meta_ = meta_from(address);
        ASSERT_EQ(parse(header).outcome, ParseOutcome::row);
        EXPECT_EQ(get(Column::Computer), address);
    }
    meta_.source = {};
    meta_.source.family = AF_INET6;
    inet_pton(AF_INET6, "::c000:201", meta_.source.addr);  // same last 4 bytes as 192.0.2.1
    ASSERT_EQ(parse(header).outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::Computer), "::192.0.2.1");
}

TEST_F(ParserTest, SetsComputerFromIpv6Sender) {
    meta_.source = {};
    meta_.source.family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::7", meta_.source.addr);
    ASSERT_EQ(parse(header).outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::Computer), "2001:db8::7");
}

TEST_F(ParserTest, LeavesComputerUnsetWithoutHostnameOrSender) {
    meta_.source = {};
    ASSERT_EQ(parse(header).outcome, ParseOutcome::row);
    EXPECT_FALSE(row_.has(Column::Computer));
}

TEST_F(ParserTest, UsesGethostnameWhenNoCollectorNameIsConfigured) {
    Parser parser(ParseConfig{});
    ASSERT_EQ(parser.parse(header, meta_, row_).outcome, ParseOutcome::row);
    EXPECT_FALSE(row_.get(Column::CollectorHostName).empty());
}

TEST_F(ParserTest, AcceptsLoggerCefTag) {
    ASSERT_EQ(parse("<164>Mar 14 09:51:00 collector-01 CEF: 0|Darktrace|P|6.1|98|N|4|dvc=192.0.2.98").outcome,
              ParseOutcome::row);
    EXPECT_EQ(get(Column::DeviceVendor), "Darktrace");
    EXPECT_EQ(get(Column::Computer), "collector-01");
}

// Both were dropped as not_cef (and with non_cef = "syslog_table" became Syslog rows whose
// ProcessName was "CEF:0|Darktrace|..."). Found in review.
TEST_F(ParserTest, TakesCefGluedToTheTagAndInAShortRfc5424Header) {
    for (const char* line : {"<134>Mar 14 09:15:02 dt-master-01 darktrace:CEF:0|Darktrace|P|6.1|26|N|7|dvc=192.0.2.14",
                             "<134>1 2024-03-14T09:15:02Z dt-master-01 CEF:0|Darktrace|P|6.1|26|N|7|dvc=192.0.2.14"}) {
        ASSERT_EQ(parse(line).outcome, ParseOutcome::row) << line;
        EXPECT_EQ(get(Column::DeviceVendor), "Darktrace") << line;
        EXPECT_EQ(get(Column::Computer), "dt-master-01") << line;
        EXPECT_EQ(get(Column::DeviceAddress), "192.0.2.14") << line;
    }
}

TEST_F(ParserTest, FindsCefBehindAnUnknownPrefix) {
    ASSERT_EQ(parse("Oct 30, 2021 10:34:23 host.domain.com CEF:0|Kaspersky|KWTS|6.1|1|N|High|dvc=1.2.3.4").outcome,
              ParseOutcome::row);
    EXPECT_EQ(get(Column::DeviceVendor), "Kaspersky");
    EXPECT_EQ(get(Column::Computer), "192.0.2.200");
}

TEST_F(ParserTest, MapsTypedColumnsAndKeepsBadNumbersInAdditionalExtensions) {
    ASSERT_EQ(parse(std::string(header) + "dpt=443 spt=http cnt=2 in=12345678901 cfp1=0.5 cfp2=abc cn1=9000000000").outcome,
              ParseOutcome::row);
    EXPECT_EQ(get(Column::DestinationPort), "443");
    EXPECT_FALSE(row_.has(Column::SourcePort));
    EXPECT_EQ(get(Column::EventCount), "2");
    EXPECT_EQ(get(Column::ReceivedBytes), "12345678901");
    EXPECT_EQ(get(Column::DeviceCustomFloatingPoint1), "0.5");
    EXPECT_EQ(get(Column::FieldDeviceCustomNumber1), "9000000000");
    EXPECT_FALSE(row_.has(Column::DeviceCustomNumber1));
    EXPECT_EQ(get(Column::AdditionalExtensions), "spt=http;cfp2=abc");
    EXPECT_EQ(parser_.stats().bad_numbers.load(), 2U);
}

TEST_F(ParserTest, MapsExternalIdToExtIdOnly) {
    ASSERT_EQ(parse(std::string(header) + "externalId=abc-1907243").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::ExtID), "abc-1907243");
    EXPECT_FALSE(row_.has(Column::ExternalID));
}

TEST_F(ParserTest, ConvertsStartAndEndToIsoAndKeepsRtAsText) {
    ASSERT_EQ(parse(std::string(header) + "rt=Mar 14 2024 09:51:00 start=1710409890000 end=Mar 14 2024 09:51:59").outcome,
              ParseOutcome::row);
    EXPECT_EQ(get(Column::ReceiptTime), "Mar 14 2024 09:51:00");
    EXPECT_EQ(get(Column::StartTime), "2024-03-14T09:51:30.000Z");
    EXPECT_EQ(get(Column::EndTime), "2024-03-14T09:51:59.000Z");
    EXPECT_FALSE(row_.has(Column::AdditionalExtensions));
}

TEST_F(ParserTest, DatesAYearlessStartToThisYearWhenThatIsNotInTheFuture) {
    meta_.receive_time_ns = 1'796'284'800'000'000'000;  // frozen: 2026-12-03T08:00:00Z
    ASSERT_EQ(parse(std::string(header) + "start=Mar 5 10:00:00 end=Dec 25 12:00:00").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::StartTime), "2026-03-05T10:00:00.000Z");
    EXPECT_EQ(get(Column::EndTime), "2025-12-25T12:00:00.000Z");
}

TEST_F(ParserTest, KeepsUnreadableTimesInAdditionalExtensions) {
    ASSERT_EQ(parse(std::string(header) + "start=yesterday end=Jul 10 17:34:00 XYZ").outcome, ParseOutcome::row);
    EXPECT_FALSE(row_.has(Column::StartTime));
    EXPECT_FALSE(row_.has(Column::EndTime));
    EXPECT_EQ(get(Column::AdditionalExtensions), "start=yesterday;end=Jul 10 17:34:00 XYZ");
    EXPECT_EQ(parser_.stats().bad_timestamps.load(), 2U);
}

TEST_F(ParserTest, JoinsUnmappedKeysInArrivalOrderWithoutTrailingSeparator) {
    ASSERT_EQ(parse(std::string(header) + "b=2 dvc=1.1.1.1 a=1 c=3   ").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::AdditionalExtensions), "b=2;a=1;c=3");
}

TEST_F(ParserTest, EndsAdditionalExtensionsWithASeparatorWhenConfigured) {
    Parser parser(ParseConfig{.collector_host_name = "c", .additional_extensions_trailing_separator = true});
    const std::string line = std::string(header) + "message=m darktraceUrl=https://x/#modelbreach/1";
    ASSERT_EQ(parser.parse(line, meta_, row_).outcome, ParseOutcome::row);
    EXPECT_EQ(row_.get(Column::AdditionalExtensions), "message=m;darktraceUrl=https://x/#modelbreach/1;");
    const std::string no_extensions = std::string(header) + "dvc=1.1.1.1";
    ASSERT_EQ(parser.parse(no_extensions, meta_, row_).outcome, ParseOutcome::row);
    EXPECT_FALSE(row_.has(Column::AdditionalExtensions)) << "no pairs, no separator";
}

TEST_F(ParserTest, KeepsEmptyUnmappedValuesAndSkipsEmptyMappedOnes) {
    ASSERT_EQ(parse(std::string(header) + "dhost= cs2= cs2Label=Malware note=").outcome, ParseOutcome::row);
    EXPECT_FALSE(row_.has(Column::DestinationHostName));
    EXPECT_FALSE(row_.has(Column::DeviceCustomString2));
    EXPECT_EQ(get(Column::DeviceCustomString2Label), "Malware");
    EXPECT_EQ(get(Column::AdditionalExtensions), "note=");
}

TEST_F(ParserTest, KeepsARepeatedMappedKeyInAdditionalExtensions) {
    ASSERT_EQ(parse(std::string(header) + "dst=1.1.1.1 dst=2.2.2.2").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::DestinationIP), "1.1.1.1");
    EXPECT_EQ(get(Column::AdditionalExtensions), "dst=2.2.2.2");
}

TEST_F(ParserTest, UnescapesHeaderAndExtensionValues) {
    ASSERT_EQ(parse(R"(CEF:0|V\|x|P\\y|1|2|N|3|suser=DOM\\user msg=a\=b\nc ext=x\\y)").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::DeviceVendor), "V|x");
    EXPECT_EQ(get(Column::DeviceProduct), R"(P\y)");
    EXPECT_EQ(get(Column::SourceUserName), R"(DOM\user)");
    EXPECT_EQ(get(Column::Message), "a=b\nc");
    EXPECT_EQ(get(Column::AdditionalExtensions), R"(ext=x\y)");
}

TEST_F(ParserTest, StripsTrailingSpacesAndCrlfFromTheLastValue) {
    ASSERT_EQ(parse(std::string(header) + "msg=last value  \r\n").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::Message), "last value");
}

TEST_F(ParserTest, TrimsPaddingBeforeTheNextKeyInEveryColumnAndAdditionalExtensions) {
    // Issue 13.1: "src=192.0.2.7   spt=..." gave SourceIP "192.0.2.7  ", which no KQL join matches.
    ASSERT_EQ(parse(std::string(header) +
                    "src=192.0.2.7   spt=443   dst=192.0.2.8    cn1=42  duser=bob   note=padded   "
                    "msg=two  words   end=1710409920000   x=1")
                  .outcome,
              ParseOutcome::row);
    EXPECT_EQ(get(Column::SourceIP), "192.0.2.7");
    EXPECT_EQ(get(Column::SourcePort), "443");
    EXPECT_EQ(get(Column::DestinationIP), "192.0.2.8");
    EXPECT_EQ(get(Column::FieldDeviceCustomNumber1), "42");
    EXPECT_EQ(get(Column::DestinationUserName), "bob");
    EXPECT_EQ(get(Column::Message), "two  words");
    EXPECT_EQ(get(Column::EndTime), "2024-03-14T09:52:00.000Z");
    EXPECT_EQ(get(Column::AdditionalExtensions), "note=padded;x=1");
    EXPECT_EQ(parser_.stats().bad_numbers.load(), 0U);
}

TEST_F(ParserTest, RepairsInvalidUtf8AndCountsIt) {
    ASSERT_EQ(parse(std::string(header) + "msg=caf\xC3 x=\xFF\xFE").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::Message), "caf\xEF\xBF\xBD");
    EXPECT_EQ(get(Column::AdditionalExtensions), "x=\xEF\xBF\xBD\xEF\xBF\xBD");
    EXPECT_EQ(parser_.stats().invalid_utf8.load(), 1U);
}

TEST_F(ParserTest, CutsLongValuesAtAUtf8Boundary) {
    Parser parser(ParseConfig{.collector_host_name = "c", .field_bytes_max = 256});
    std::string value(255, 'a');
    value += "\xC3\xA9tail";  // 'é' straddles the 256-byte limit
    const std::string line = std::string(header) + "msg=" + value;  // outlives the row's views
    ASSERT_EQ(parser.parse(line, meta_, row_).outcome, ParseOutcome::row);
    EXPECT_EQ(row_.get(Column::Message), std::string(255, 'a'));
    EXPECT_EQ(parser.stats().truncated_fields.load(), 1U);
}

TEST_F(ParserTest, CountsNonCefAsDropped) {
    const ParseResult r = parse("<13>Mar 14 09:15:02 host sshd[22]: Accepted publickey for root");
    EXPECT_EQ(r.outcome, ParseOutcome::dropped_not_cef);
    EXPECT_EQ(r.reason, "not_cef");
    EXPECT_EQ(parser_.stats().not_cef.load(), 1U);
}

TEST_F(ParserTest, SyslogTableModeMakesASyslogRowNotADrop) {
    Parser parser(ParseConfig{.non_cef = ParseConfig::NonCef::syslog_table});
    EXPECT_EQ(parser.parse("<13>Mar 14 09:15:02 host app: hello", meta_, row_).outcome, ParseOutcome::row);
    EXPECT_EQ(row_.table, Table::syslog);
    EXPECT_EQ(parser.stats().not_cef.load(), 0U);
    EXPECT_EQ(parser.stats().syslog_rows.load(), 1U);
    EXPECT_EQ(parser.stats().rows.load(), 0U);
}

TEST_F(ParserTest, RejectsBadCefHeaderWithItsReason) {
    const ParseResult r = parse("<164>CEF:0|Mock-test|MOCK|common=event-format-test|end|TRAFFIC|rt=1 deviceDirection=1");
    EXPECT_EQ(r.outcome, ParseOutcome::rejected);
    EXPECT_EQ(r.reason, "bad_cef_header");
    EXPECT_EQ(parse("CEF:7|a|b|c|d|e|1|").reason, "bad_cef_header");
    EXPECT_EQ(parser_.stats().bad_cef_header.load(), 2U);
}

// The same missing field when the extension holds a '|' (legal in a value, e.g. a URL): the
// extension's start up to it slid into Severity. It was a row with LogSeverity "rt=1 msg=a".
TEST_F(ParserTest, RejectsAShortHeaderWhoseExtensionHoldsAPipe) {
    EXPECT_EQ(parse("CEF:0|Mock-test|MOCK|common=event-format-test|end|TRAFFIC|rt=1 msg=a|b src=1.1.1.1").reason,
              "bad_cef_header");
    EXPECT_EQ(parser_.stats().bad_cef_header.load(), 1U);
    // A full header whose extension holds a '|' is still a row, the '|' in its value.
    ASSERT_EQ(parse(std::string(header) + "msg=a|b src=1.1.1.1").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::Message), "a|b");
    EXPECT_EQ(get(Column::SourceIP), "1.1.1.1");
}

TEST_F(ParserTest, RejectsEmptyMessages) {
    EXPECT_EQ(parse("<134>Mar 14 09:15:02 host ").reason, "empty_message");
    EXPECT_EQ(parse("").reason, "empty_message");
    EXPECT_EQ(parse("\r\n").reason, "empty_message");
    EXPECT_EQ(parser_.stats().empty_message.load(), 3U);
}

TEST_F(ParserTest, KeepsStrayExtensionTextAndCountsIt) {
    ASSERT_EQ(parse(std::string(header) + "garbage a=1").outcome, ParseOutcome::row);
    EXPECT_EQ(get(Column::AdditionalExtensions), "garbage;a=1");
    EXPECT_EQ(parser_.stats().stray_extension_text.load(), 1U);
}

TEST_F(ParserTest, CountsTruncatedAndOversizeMessages) {
    meta_.flags = message_truncated;
    ASSERT_EQ(parse(std::string(header) + "msg=x").outcome, ParseOutcome::row);
    EXPECT_EQ(parser_.stats().truncated_messages.load(), 1U);
    meta_.flags = 0;
    std::string huge = std::string(header) + "msg=" + std::string(parse_message_bytes_max + 100, 'x');
    ASSERT_EQ(parse(huge).outcome, ParseOutcome::row);
    EXPECT_EQ(parser_.stats().oversize_messages.load(), 1U);
    EXPECT_EQ(get(Column::Message).size(), config_.field_bytes_max);
}

TEST_F(ParserTest, HashesTheMessageAfterTheSyslogTimestamp) {
    const std::string with_header = "<134>Mar 14 09:15:02 host " + std::string(header) + "a=1";
    EXPECT_EQ(parse(with_header).dedupe_text, "host " + std::string(header) + "a=1");
    const std::string bare = std::string(header) + "a=1";
    EXPECT_EQ(parse(bare).dedupe_text, bare);
}

TEST_F(ParserTest, RegistersEveryCounter) {
    MetricsRegistry registry;
    parser_.register_metrics(registry, "lane=\"0\"");
    (void)parse(header);
    EXPECT_EQ(registry.value("parse_rows_total", "lane=\"0\""), 1);
    EXPECT_NE(registry.render().find("cefd_parse_not_cef_total"), std::string::npos);
}

TEST_F(ParserTest, ParsesEveryRadiflowLine) {
    for (const std::string& line : test::sample_lines(test::source_path("tests/data/RadiflowIsid_RawLogs.txt"))) {
        ASSERT_EQ(parse(line).outcome, ParseOutcome::row) << line;
        EXPECT_EQ(get(Column::DeviceVendor), "radiflow");
        EXPECT_EQ(get(Column::Computer), "radiflow-labs-isid");
    }
}

struct Expected {
    std::string_view product, activity, severity, computer, device_address, destination_ip, destination_port,
        additional_extensions;
};

// One row per non-comment line of tests/data/synthetic-darktrace-cef.log, in order.
const Expected synthetic_expected[] = {
    {"Enterprise Immune System", "Anomalous Connection/Anomalous SSL without SNI to New External", "7", "dt-master-01", "192.0.2.14", "203.0.113.50", "443", "message=SSL certificate validation failed with (unable to get local issuer certificate);darktraceUrl=https://darktrace.example.com/#modelbreach/1907243"},
    {"Enterprise Immune System", "Anomalous Server Activity/Anomalous External Activity from Critical Network Device", "6", "dt-master-01", "192.0.2.22", "198.51.100.22", "445", "darktraceUrl=https://darktrace.example.com/#modelbreach/1907249"},
    {"Enterprise Immune System", "Anomalous Connection/Anomalous SSL without SNI to New External", "8", "dt-master-01", "192.0.2.11", "203.0.113.11", "3389", "deviceMacAddress=00:15:5d:24:03:4a;message=SSL certificate seen younger than 30.0 days;darktraceUrl=https://darktrace.example.com/#modelbreach/1900991"},
    {"Enterprise Immune System", "User/Unusual External Source for Credential Use", "6", "dt-master-01", "198.51.100.220", "", "", "message=Unusual source for use of user@example.com from AS64500 EXAMPLE-ASN;darktraceUrl=https://darktrace.example.com/#modelbreach/1893897"},
    {"Enterprise Immune System", "System/System", "7", "dt-master-01", "0.0.0.0", "", "", "message=Probe error;darktraceUrl=https://darktrace.example.com/#modelbreach/1870730"},
    {"Enterprise Immune System", "Antigena/Network/External Threat/Antigena Quarantine Example", "5", "dt-master-01", "192.0.2.158", "203.0.113.220", "443", "message=Model/Antigena/Action taken/Block connections to 203.0.113.220;darktraceUrl=https://darktrace.example.com/#modelbreach/1902823"},
    {"Enterprise Immune System", "SaaS/Access/Unusual SaaS Login Location", "4", "dt-master-01", "198.51.100.9", "", "", "message=Login from unusual country;long=-0.1276;lat=51.5072;darktraceUrl=https://darktrace.example.com/#modelbreach/1910001"},
    {"Enterprise Immune System", "Compliance/Possible Tor Usage", "2", "dt-master-01", "192.0.2.77", "198.51.100.200", "9001", "darktraceUrl=https://darktrace.example.com/#modelbreach/1910002"},
    {"Enterprise Immune System", "Anomalous Connection/Anomalous SSL without SNI to New External", "8", "dt-master-01", "192.0.2.45", "203.0.113.45", "443", "darktraceUrl=https://darktrace.example.com/#modelbreach/1910003"},
    {"Enterprise Immune System", "Anomalous Server Activity/Anomalous External Activity from Critical Network Device", "6", "dt-master-01.corp.example.com", "192.0.2.54", "198.51.100.54", "445", "darktraceUrl=https://darktrace.example.com/#modelbreach/1910004"},
    {"Enterprise Immune System", "Anomalous Connection/Anomalous SSL without SNI to New External", "7", "127.0.0.1", "192.0.2.60", "203.0.113.60", "443", "darktraceUrl=https://darktrace.example.com/#modelbreach/1910005"},
    {"Enterprise Immune System", "Anomalous Connection/Anomalous SSL without SNI to New External", "7", "127.0.0.1", "192.0.2.61", "203.0.113.61", "443", "darktraceUrl=https://darktrace.example.com/#modelbreach/1910006"},
    {"AI Analyst", "Possible SSL Command and Control", "8", "dt-master-01", "192.0.2.14", "", "", "groupingId=9f1c2e7a;groupByActivity=0;message=The device made repeated TLS connections to a rare external endpoint;darktraceUrl=https://darktrace.example.com/#aiincident/6b2f0c1e-1111-4c2a-9e77-000000000001;long=-0.1276;lat=51.5072"},
    {"AI Analyst", "Possible SSL Command and Control", "8", "dt-master-01", "192.0.2.15", "", "", "groupingId=9f1c2e7a;groupByActivity=0;message=Second device in the same incident group;darktraceUrl=https://darktrace.example.com/#aiincident/6b2f0c1e-1111-4c2a-9e77-000000000002"},
    {"AI Analyst", "Scanning of Multiple Devices", "6", "dt-master-01", "192.0.2.30", "", "", "groupingId=44aa10bb;groupByActivity=1;message=Device scanned 120 internal hosts;darktraceUrl=https://darktrace.example.com/#aiincident/6b2f0c1e-1111-4c2a-9e77-000000000003"},
    {"AI Analyst", "Possible SSL Command and Control", "9", "dt-master-01", "192.0.2.16", "", "", "groupingId=9f1c2e7a;groupByActivity=0;darktraceUrl=https://darktrace.example.com/#aiincident/6b2f0c1e-1111-4c2a-9e77-000000000004;message=Incident escalated"},
    {"Enterprise Immune System", "Compliance/Remote Desktop | RDP via C:\\Tools\\rdp.exe", "3", "dt-master-01", "192.0.2.88", "", "", "darktraceUrl=https://darktrace.example.com/#modelbreach/1910010"},
    {"Enterprise Immune System", "Device/Suspicious Command Line", "6", "dt-master-01", "192.0.2.89", "", "", "message=cmd /c set A=1 && type C:\\Temp\\x.txt\nsecond line\rthird part;darktraceUrl=https://darktrace.example.com/#modelbreach/1910011"},
    {"Enterprise Immune System", "Device/New Device Joined", "1", "dt-master-01", "192.0.2.90", "", "", "message=padded value;darktraceUrl=https://darktrace.example.com/#modelbreach/1910012"},
    {"Enterprise Immune System", "Anomalous Connection/Data Sent to Rare Domain", "7", "dt-master-01", "192.0.2.91", "", "", "message=Connections: 12; bytes out: 3400 | rare domain: files.example.net;darktraceUrl=https://darktrace.example.com/#modelbreach/1910013"},
    {"Enterprise Immune System", "Unusual Activity/Unusual Activity from New Device", "5", "dt-master-01", "192.0.2.92", "", "", "ad.tag=lab;dt_score=0.87;x-custom=yes;message=query string;a=b was seen;darktraceUrl=https://darktrace.example.com/#modelbreach/1910014"},
    {"Enterprise Immune System", "Compliance/Ünusual Dömain Tést", "3", "dt-master-01", "192.0.2.93", "", "", "message=Connexion vers straße.example — 東京;darktraceUrl=https://darktrace.example.com/#modelbreach/1910015"},
    {"Enterprise Immune System", "Anomalous Connection/Unusual Port", "High", "dt-master-01", "192.0.2.94", "", "", "darktraceUrl=https://darktrace.example.com/#modelbreach/1910016"},
    {"Enterprise Immune System", "Anomalous Connection/Unusual Port", "Very-High", "dt-master-01", "192.0.2.95", "", "", "darktraceUrl=https://darktrace.example.com/#modelbreach/1910017"},
    {"Enterprise Immune System", "Anomalous Connection/Unusual Port", "10", "dt-master-01", "192.0.2.96", "", "", "darktraceUrl=https://darktrace.example.com/#modelbreach/1910018"},
    {"Enterprise Immune System", "Anomalous Connection/Unusual Port", "0", "dt-master-01", "192.0.2.97", "", "", "darktraceUrl=https://darktrace.example.com/#modelbreach/1910019"},
    {"Enterprise Immune System", "Anomalous Connection/Unusual Port", "4", "collector-01", "192.0.2.98", "", "", "darktraceUrl=https://darktrace.example.com/#modelbreach/1910020"},
    {"Enterprise Immune System", "Anomalous Connection/Unusual Port", "4", "dt-master-01", "192.0.2.99", "", "", "darktraceUrl=https://darktrace.example.com/#modelbreach/1910021"},
};

TEST(SyntheticDarktrace, EveryLineGivesTheExpectedColumns) {
    const auto lines = test::sample_lines(test::source_path("tests/data/synthetic-darktrace-cef.log"));
    ASSERT_EQ(lines.size(), std::size(synthetic_expected));
    Parser parser(ParseConfig{.collector_host_name = "collector"});
    const MessageMeta meta = meta_from("127.0.0.1");
    Row row;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        ASSERT_EQ(parser.parse(lines[i], meta, row).outcome, ParseOutcome::row) << lines[i];
        const Expected& e = synthetic_expected[i];
        SCOPED_TRACE(lines[i]);
        EXPECT_EQ(row.get(Column::DeviceVendor), "Darktrace");
        EXPECT_EQ(row.get(Column::DeviceProduct), e.product);
        EXPECT_EQ(row.get(Column::Activity), e.activity);
        EXPECT_EQ(row.get(Column::LogSeverity), e.severity);
        EXPECT_EQ(row.get(Column::Computer), e.computer);
        EXPECT_EQ(row.get(Column::DeviceAddress), e.device_address);
        EXPECT_EQ(row.get(Column::DestinationIP), e.destination_ip);
        EXPECT_EQ(row.get(Column::DestinationPort), e.destination_port);
        EXPECT_EQ(row.get(Column::AdditionalExtensions), e.additional_extensions);
        EXPECT_EQ(row.get(Column::CollectorHostName), "collector");
    }
    EXPECT_EQ(parser.stats().rows.load(), lines.size());
    EXPECT_EQ(parser.stats().bad_numbers.load() + parser.stats().bad_timestamps.load(), 0U);
}

}  // namespace
}  // namespace cefd
