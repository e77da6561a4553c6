// The row encoder: output is valid JSON (parsed back with simdjson), every column has its JSON
// type, strings are escaped, TimeGenerated is formatted from the receive time.
#include "engine/row/row_json.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <vector>

#include "stages/parse/parse.h"
#include "tests/support/support.h"

namespace cefd {
namespace {

std::string encode(const Row& row) {
    std::string out(row_json_bound(row), '\0');
    const char* end = write_row_json(row, out.data());
    EXPECT_LE(static_cast<std::size_t>(end - out.data()), out.size());
    out.resize(static_cast<std::size_t>(end - out.data()));
    return out;
}

simdjson::dom::element parse_json(simdjson::dom::parser& parser, const std::string& text) {
    simdjson::dom::element element;
    const auto error = parser.parse(text).get(element);
    EXPECT_EQ(error, simdjson::SUCCESS) << text;
    return element;
}

TEST(RowJson, WritesTimeGeneratedWithMicroseconds) {
    Row row;
    row.receive_time_ns = 1'710'409'920'123'456'789;
    EXPECT_EQ(encode(row), R"({"TimeGenerated":"2024-03-14T09:52:00.123456Z"})");
    row.receive_time_ns = 0;
    EXPECT_EQ(encode(row), R"({"TimeGenerated":"1970-01-01T00:00:00.000000Z"})");
    row.receive_time_ns = 951'868'799'999'999'000;  // leap day, last microsecond
    EXPECT_EQ(encode(row), R"({"TimeGenerated":"2000-02-29T23:59:59.999999Z"})");
}

TEST(RowJson, RecomputesTheCachedSecondWhenTimeMoves) {
    Row row;
    row.receive_time_ns = 1'710'409'920'000'000'000;
    EXPECT_NE(encode(row).find("09:52:00.000000Z"), std::string::npos);
    row.receive_time_ns += 1'000'000'000;
    EXPECT_NE(encode(row).find("09:52:01.000000Z"), std::string::npos);
    row.receive_time_ns -= 86'400'000'000'000;
    EXPECT_NE(encode(row).find("2024-03-13T09:52:01.000000Z"), std::string::npos);
}

TEST(RowJson, WritesNumbersAsNumbersAndStringsAsStrings) {
    Row row;
    row.set(Column::DestinationPort, "443");
    row.set(Column::SentBytes, "12345678901");
    row.set(Column::DeviceCustomFloatingPoint1, "-0.5");
    row.set(Column::StartTime, "2024-03-14T09:51:30.000Z");
    row.set(Column::DeviceVendor, "Darktrace");
    const std::string text = encode(row);
    simdjson::dom::parser parser;
    const auto doc = parse_json(parser, text);
    EXPECT_EQ(int64_t(doc["DestinationPort"]), 443);
    EXPECT_EQ(int64_t(doc["SentBytes"]), 12345678901);
    EXPECT_EQ(double(doc["DeviceCustomFloatingPoint1"]), -0.5);
    EXPECT_EQ(std::string_view(doc["StartTime"]), "2024-03-14T09:51:30.000Z");
    EXPECT_EQ(std::string_view(doc["DeviceVendor"]), "Darktrace");
}

TEST(RowJson, WritesOnlyTheColumnsOfTheRowsTable) {
    Row row;
    row.receive_time_ns = 1'710'409'920'123'456'789;
    row.set(Column::Computer, "host");
    row.set(Column::DeviceVendor, "Darktrace");  // CommonSecurityLog only
    row.set(Column::SyslogMessage, "hello");     // Syslog only
    row.set(Column::ProcessID, "42");            // both
    EXPECT_EQ(encode(row),
              R"({"TimeGenerated":"2024-03-14T09:52:00.123456Z","Computer":"host","DeviceVendor":"Darktrace","ProcessID":42})");
    row.table = Table::syslog;
    EXPECT_EQ(encode(row),
              R"({"TimeGenerated":"2024-03-14T09:52:00.123456Z","Computer":"host","ProcessID":42,"SyslogMessage":"hello"})");
}

TEST(RowJson, EscapesQuotesBackslashesAndControlCharacters) {
    std::string nasty = "a\"b\\c\nd\re\tf\bg\fh";
    nasty += '\0';
    nasty += "\x01\x1f\x7f end \xC3\xA9 \xE6\x9D\xB1";
    Row row;
    row.set(Column::Message, nasty);
    const std::string text = encode(row);
    EXPECT_NE(text.find(R"(a\"b\\c\nd\re\tf\bg\fh\u0000\u0001\u001f\u007f end )"), std::string::npos) << text;
    simdjson::dom::parser parser;
    const auto doc = parse_json(parser, text);
    EXPECT_EQ(std::string_view(doc["Message"]), nasty);
}

// The encoder scans 16 bytes at a time: every byte value, at every position of strings of 1 to
// 40 bytes (each side of a 16-byte block and its tail), and two escapes in one block, must come
// out as a plain byte-by-byte escaper writes them, with nothing stray after the closing quote.
std::string reference_escape(std::string_view text) {
    std::string out;
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20 || c == 0x7F) {
                    static constexpr char hex[] = "0123456789abcdef";
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 0xF];
                } else {
                    out += ch;
                }
        }
    }
    return out;
}

TEST(RowJson, EscapesEveryByteAtEveryPositionAsAByteLoopWould) {
    for (std::size_t length = 1; length <= 40; ++length) {
        for (std::size_t at = 0; at < length; ++at) {
            for (int byte = 0; byte < 256; ++byte) {
                std::string text(length, 'a');
                text[at] = static_cast<char>(byte);
                ASSERT_EQ(json_escape(text), reference_escape(text)) << "length " << length << " at " << at << " byte " << byte;
                text[length - 1 - at] = '"';
                ASSERT_EQ(json_escape(text), reference_escape(text)) << "length " << length << " at " << at << " byte " << byte;
            }
        }
    }
    // Through the row encoder too: a value whose escapes sit in and after full blocks, then the
    // next column's key right after the closing quote (a stray store would show up there).
    Row row;
    const std::string value = std::string(17, 'x') + "\"\x01" + std::string(30, 'y') + "\x7f";
    row.set(Column::Activity, value);
    row.set(Column::DeviceVendor, "Darktrace");
    std::vector<char> out(row_json_bound(row));
    const std::string json(out.data(), write_row_json(row, out.data()));
    EXPECT_NE(json.find("\"" + reference_escape(value) + "\","), std::string::npos) << json;
    EXPECT_NE(json.find("\"Darktrace\""), std::string::npos) << json;
}

TEST(RowJson, BoundHoldsForAWorstCaseRow) {
    Row row;
    const std::string controls(1000, '\x01');
    for (std::size_t i = 0; i < column_count; ++i) {
        const auto c = static_cast<Column>(i);
        if (info(c).type == ColumnType::string) row.set(c, controls);
    }
    const std::string text = encode(row);  // encode() checks the bound
    simdjson::dom::parser parser;
    (void)parse_json(parser, text);
}

TEST(RowJson, EncodesEverySampleAsValidJsonWithColumnTypes) {
    Parser p(ParseConfig{.collector_host_name = "collector"});
    Row row;
    MessageMeta meta;
    meta.receive_time_ns = 1'710'409'920'123'456'789;
    simdjson::dom::parser parser;
    std::size_t rows = 0;
    for (const char* file : {"tests/data/synthetic-darktrace-cef.log", "tests/data/WithSecureViaConnectorSampleData.txt",
                             "tests/data/RadiflowIsid_RawLogs.txt"}) {
        for (const std::string& line : test::sample_lines(test::source_path(file))) {
            if (p.parse(line, meta, row).outcome != ParseOutcome::row) continue;
            const std::string text = encode(row);
            const auto doc = parse_json(parser, text);
            simdjson::dom::object object;
            ASSERT_EQ(doc.get(object), simdjson::SUCCESS);
            std::size_t fields = 0;
            for (const auto field : object) {
                ++fields;
                std::size_t index = column_count;
                for (std::size_t i = 0; i < column_count; ++i)
                    if (columns[i].name == field.key) index = i;
                ASSERT_LT(index, column_count) << field.key;
                switch (columns[index].type) {
                    case ColumnType::int_:
                    case ColumnType::long_: EXPECT_TRUE(field.value.is_int64()) << field.key; break;
                    case ColumnType::real: EXPECT_TRUE(field.value.is_number()) << field.key; break;
                    case ColumnType::string:
                    case ColumnType::datetime: EXPECT_TRUE(field.value.is_string()) << field.key; break;
                }
            }
            EXPECT_EQ(fields, row.column_set_count() + 1) << text;  // + TimeGenerated
            ++rows;
        }
    }
    EXPECT_GT(rows, 100U);
}

}  // namespace
}  // namespace cefd
