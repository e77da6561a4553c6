// The parse part of issue 13's hostile-input list (items 8 and 9): what a sender on port 514 can
// put in one message. Each case must give a row or a counted reject, never a crash, and every
// row must encode as one valid JSON object within row_json_bound(). The network versions of
// these cases (tests/e2e) belong to the receive stage's suite; this is the parser alone.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <vector>

#include "engine/row/row_json.h"
#include "stages/parse/parse.h"

namespace cefd {
namespace {

class HostileInputTest : public ::testing::TestWithParam<ParseConfig::NonCef> {
protected:
    ParseResult parse(const std::string& message) {
        line_ = message;
        const ParseResult result = parser_.parse(line_, meta_, row_);
        if (result.outcome == ParseOutcome::row) {
            std::string json(row_json_bound(row_), '\0');
            const char* end = write_row_json(row_, json.data());
            json.resize(static_cast<std::size_t>(end - json.data()));
            simdjson::dom::element element;
            EXPECT_EQ(json_parser_.parse(json).get(element), simdjson::SUCCESS) << json.substr(0, 200);
            EXPECT_TRUE(element.is_object());
        } else {
            EXPECT_FALSE(result.reason.empty());
        }
        return result;
    }
    Parser parser_{ParseConfig{.non_cef = GetParam(), .collector_host_name = "collector-test"}};
    MessageMeta meta_{.receive_time_ns = 1'796'284'800'000'000'000};
    Row row_;
    std::string line_;
    simdjson::dom::parser json_parser_;
};

const std::string header = "CEF:0|Darktrace|DCIP|6.1|100|Model Breach|7|";

TEST_P(HostileInputTest, RejectsAnEmptyDatagram) {
    EXPECT_EQ(parse("").reason, "empty_message");
    EXPECT_EQ(parser_.stats().empty_message.load(), 1U);
}

TEST_P(HostileInputTest, CutsA64KibDatagramAndCountsIt) {
    const ParseResult r = parse(header + "msg=" + std::string(65'507 - header.size() - 4, 'x'));
    ASSERT_EQ(r.outcome, ParseOutcome::row);
    EXPECT_EQ(row_.get(Column::Message).size(), 32'768U);
    EXPECT_EQ(parser_.stats().truncated_fields.load(), 1U);
    parse("<13>Mar 14 09:15:02 host app: " + std::string(65'507, 'y'));  // over parse_message_bytes_max
    EXPECT_EQ(parser_.stats().oversize_messages.load(), 1U);
}

TEST_P(HostileInputTest, KeepsNulBytesAsEscapedJson) {
    ASSERT_EQ(parse(header + std::string("msg=a\0b x=\0y\0\0", 14)).outcome, ParseOutcome::row);
    EXPECT_EQ(row_.get(Column::Message), std::string_view("a\0b", 3));
    // NULs at the very end are framing (some senders terminate datagrams with one): dropped.
    EXPECT_EQ(row_.get(Column::AdditionalExtensions), std::string_view("x=\0y", 4));
}

TEST_P(HostileInputTest, RepairsInvalidUtf8InEveryPart) {
    ASSERT_EQ(parse("<13>Mar 14 09:15:02 h\xFF" "st CEF:0|V\xC3|P|1|2|N|3|msg=\xED\xA0\x80 k\xFE=v").outcome,
              ParseOutcome::row);
    EXPECT_EQ(parser_.stats().invalid_utf8.load(), 1U);
    EXPECT_EQ(row_.get(Column::Computer), "h\xEF\xBF\xBDst");
}

TEST_P(HostileInputTest, TakesTenThousandExtensionPairs) {
    std::string line = header;
    for (int i = 0; i < 10'000; ++i) line += "k" + std::to_string(i) + "=v ";
    ASSERT_EQ(parse(line).outcome, ParseOutcome::row);
    EXPECT_EQ(row_.get(Column::AdditionalExtensions).size(), 32'768U);  // cut at field_bytes_max
    EXPECT_EQ(parser_.stats().truncated_fields.load(), 1U);
}

TEST_P(HostileInputTest, TakesAHeaderWithTwoThousandPipes) {
    ASSERT_EQ(parse("CEF:0" + std::string(2'000, '|')).outcome, ParseOutcome::row);
    EXPECT_FALSE(row_.has(Column::DeviceVendor));
    EXPECT_EQ(row_.get(Column::AdditionalExtensions), std::string(2'000 - 7, '|'));
    EXPECT_EQ(parser_.stats().stray_extension_text.load(), 1U);
}

TEST_P(HostileInputTest, TakesLongRunsOfEscapes) {
    ASSERT_EQ(parse(header + "msg=" + std::string(30'000, '\\') + "   " + "b=" + std::string(20'001, '\\') + "  ")
                  .outcome,
              ParseOutcome::row);
    EXPECT_EQ(row_.get(Column::Message), std::string(15'000, '\\'));  // the padding is not escaped
    EXPECT_EQ(row_.get(Column::AdditionalExtensions), "b=" + std::string(10'000, '\\') + "\\ ");
    ASSERT_EQ(parse("CEF:0" + std::string(20'000, '\\') + "|").outcome, ParseOutcome::rejected);
    ASSERT_EQ(parse(header.substr(0, 10) + std::string(9'999, '\\') + "|" + header.substr(10)).outcome,
              ParseOutcome::row);
}

TEST_P(HostileInputTest, TakesLinesOfOnlyAngleBracketsOrDigits) {
    for (const std::string& line : {std::string(5'000, '<'), std::string(5'000, '9'), std::string("<"),
                                    std::string("<1"), std::string("<191>"), std::string("<999>1 "),
                                    std::string("<13>1"), std::string("<13>1 "), std::string("<13>11111111")}) {
        SCOPED_TRACE(line.substr(0, 20));
        const ParseResult r = parse(line);
        if (GetParam() == ParseConfig::NonCef::drop) {
            EXPECT_NE(r.outcome, ParseOutcome::row);
        }
    }
    const ParseStats& s = parser_.stats();
    EXPECT_EQ(s.rows.load() + s.syslog_rows.load() + s.not_cef.load() + s.empty_message.load() +
                  s.bad_cef_header.load(),
              9U);
}

INSTANTIATE_TEST_SUITE_P(BothNonCefModes, HostileInputTest,
                         ::testing::Values(ParseConfig::NonCef::drop, ParseConfig::NonCef::syslog_table),
                         [](const auto& info) {
                             return info.param == ParseConfig::NonCef::drop ? std::string("drop")
                                                                            : std::string("syslog_table");
                         });

}  // namespace
}  // namespace cefd
