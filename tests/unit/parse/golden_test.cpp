// Golden tests from real stored CommonSecurityLog rows (tests/data, see SOURCES.md).
//
// WithSecure: 58 raw CEF lines and the same events as Sentinel stored them in Aug 2022. Known,
// documented differences (stages/parse/README.md), applied to the expected side:
//   - backslashes: pre-2023 rows kept CEF escapes (`\\`); since Feb 2023 they are removed, as we do;
//   - ExternalID / DeviceCustomNumberN (int, legacy) are ExtID / FieldDeviceCustomNumberN for us;
//   - Message: the 2022 agent replaced `;` with a space; we keep the text as sent;
//   - TenantId, TimeGenerated, SourceSystem, Type, _ResourceId, SimplifiedDeviceAction are filled
//     by the service, not the collector.
// AIA-Darktrace: the 24 stored rows re-encoded as CEF must come back as the same columns; the
// one difference is the trailing space after the last AdditionalExtensions value, which the CEF
// standard says is not preserved.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "stages/parse/parse.h"
#include "tests/support/support.h"
#include "tests/unit/parse/csv.h"

namespace cefd {
namespace {

std::optional<Column> column_named(std::string_view name) {
    for (std::size_t i = 0; i < column_count; ++i)
        if (columns[i].name == name) return static_cast<Column>(i);
    return std::nullopt;
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
    for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
    return text;
}

MessageMeta loopback_meta() {
    MessageMeta meta;
    meta.receive_time_ns = 1'661'507'331'467'000'000;
    meta.source.family = AF_INET;
    const std::uint8_t loopback[4] = {127, 0, 0, 1};
    std::memcpy(meta.source.addr, loopback, 4);
    return meta;
}

TEST(GoldenWithSecure, EveryRawLineMatchesItsStoredRow) {
    const auto lines = test::read_lines(test::source_path("tests/data/WithSecureViaConnectorSampleData.txt"));
    const auto csv = test::read_csv(test::read_file(test::source_path("tests/data/WithSecureViaConnectorSampleData.csv")));
    ASSERT_EQ(lines.size(), 58U);
    ASSERT_EQ(csv.size(), 59U);
    const std::vector<std::string>& names = csv[0];

    Parser parser(ParseConfig{.collector_host_name = "collector"});
    Row row;
    const MessageMeta meta = loopback_meta();
    int compared = 0;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        ASSERT_EQ(parser.parse(lines[i], meta, row).outcome, ParseOutcome::row) << lines[i];
        const std::vector<std::string>& stored = csv[i + 1];
        ASSERT_EQ(stored.size(), names.size()) << "row " << i;
        for (std::size_t c = 0; c < names.size(); ++c) {
            std::string name = names[c];
            if (name == "TenantId" || name == "TimeGenerated [UTC]" || name == "SourceSystem" || name == "Type" ||
                name == "_ResourceId" || name == "SimplifiedDeviceAction")
                continue;
            if (name.ends_with(" [UTC]")) name.resize(name.size() - 6);
            if (name == "ExternalID") name = "ExtID";
            if (name.starts_with("DeviceCustomNumber") && !name.ends_with("Label")) name = "Field" + name;
            const auto column = column_named(name);
            ASSERT_TRUE(column) << name;
            const std::string expected = replace_all(stored[c], "\\\\", "\\");
            std::string actual(row.get(*column));
            if (*column == Column::Message) actual = replace_all(actual, ";", " ");
            EXPECT_EQ(actual, expected) << "line " << i + 1 << ", column " << name;
            ++compared;
        }
    }
    EXPECT_GT(compared, 58 * 100);
}

TEST(GoldenDarktrace, StoredRowsReencodedAsCefComeBackUnchanged) {
    const auto csv = test::read_csv(test::read_file(test::source_path("tests/data/AIA-Darktrace.csv")));
    ASSERT_EQ(csv.size(), 25U);
    const std::vector<std::string>& names = csv[0];
    const auto field = [&](const std::vector<std::string>& r, std::string_view name) -> std::string {
        for (std::size_t c = 0; c < names.size(); ++c)
            if (names[c] == name) return r[c];
        ADD_FAILURE() << "no column " << name;
        return {};
    };
    const auto escape_header = [](std::string text) { return replace_all(replace_all(text, "\\", "\\\\"), "|", "\\|"); };
    const auto escape_value = [](std::string text) { return replace_all(replace_all(text, "\\", "\\\\"), "=", "\\="); };

    Parser parser(ParseConfig{.collector_host_name = "collector"});
    Row row;
    const MessageMeta meta = loopback_meta();
    for (std::size_t i = 1; i < csv.size(); ++i) {
        const std::vector<std::string>& stored = csv[i];
        std::string line = "<134>Mar 14 09:15:02 dt-master-01 CEF:0|Darktrace|Enterprise Immune System|" +
                           escape_header(field(stored, "DeviceVersion")) + "|" +
                           escape_header(field(stored, "DeviceEventClassID")) + "|" +
                           escape_header(field(stored, "Activity")) + "|" + escape_header(field(stored, "LogSeverity")) + "|";
        // Mapped columns first, as key=value with the CEF key the column documents.
        std::string extension;
        for (std::size_t c = 0; c < names.size(); ++c) {
            const auto column = column_named(names[c] == "ExternalID" ? "ExtID" : names[c]);
            if (!column || stored[c].empty()) continue;
            const std::string_view key = info(*column).cef_key;
            if (key.empty() || key.starts_with("header:") || key.starts_with("syslog:")) continue;
            extension += std::string(key) + "=" + escape_value(stored[c]) + " ";
        }
        // Then the unmapped pairs, in their stored order (their '=' is the pair's own).
        std::string additional = field(stored, "AdditionalExtensions");
        extension += replace_all(additional, ";", " ");
        line += extension;

        ASSERT_EQ(parser.parse(line, meta, row).outcome, ParseOutcome::row) << line;
        EXPECT_EQ(row.get(Column::DeviceVendor), "Darktrace");
        EXPECT_EQ(row.get(Column::Computer), "dt-master-01");
        for (std::size_t c = 0; c < names.size(); ++c) {
            const std::string& name = names[c];
            if (name == "Type" || stored[c].empty()) continue;
            const auto column = column_named(name == "ExternalID" ? "ExtID" : name);
            ASSERT_TRUE(column) << name;
            std::string expected = stored[c];
            if (*column == Column::AdditionalExtensions && expected.ends_with(' ')) expected.pop_back();
            EXPECT_EQ(row.get(*column), expected) << "row " << i << ", column " << name << "\n" << line;
        }
    }
}

}  // namespace
}  // namespace cefd
