// The syslog envelope corpus (tests/data/syslog-envelope-corpus.txt): every RFC 3164 and RFC 5424
// form there, through the Parser with non_cef = "syslog_table" and a frozen receive time, must
// give exactly the columns its expectation lines list. tests/e2e/parse_vs_network_test.cpp sends the
// same lines through `cefd parse` and the network.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "stages/parse/parse.h"
#include "tests/support/support.h"

namespace cefd {
namespace {

constexpr std::int64_t dec_3_2026_ns = 1'796'284'800'000'000'000;  // 2026-12-03T08:00:00Z

struct Case {
    std::size_t line_number = 0;
    std::string message;
    std::map<std::string, std::string> expected;  // column name (or "error", "Table") -> value
};

std::vector<Case> load_corpus() {
    std::vector<Case> cases;
    const std::vector<std::string> lines = test::read_lines(test::source_path("tests/data/syslog-envelope-corpus.txt"));
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const std::string& line = lines[i];
        if (line.empty() || line[0] == '#') continue;
        if (line[0] != ' ') {
            cases.push_back({i + 1, line, {}});
            continue;
        }
        const std::size_t start = line.find_first_not_of(' ');
        const std::size_t equals = line.find('=', start);
        if (cases.empty() || equals == std::string::npos) {
            ADD_FAILURE() << "corpus line " << i + 1 << " is not an expectation: " << line;
            continue;
        }
        cases.back().expected[line.substr(start, equals - start)] = line.substr(equals + 1);
    }
    return cases;
}

std::optional<Column> column_named(std::string_view name) {
    for (std::size_t i = 0; i < column_count; ++i)
        if (columns[i].name == name) return static_cast<Column>(i);
    return std::nullopt;
}

constexpr Column envelope_columns[] = {Column::Computer,      Column::HostName,    Column::EventTime,
                                       Column::Facility,      Column::SeverityLevel, Column::ProcessName,
                                       Column::ProcessID,     Column::SyslogMessage};

TEST(SyslogCorpus, EveryEnvelopeGivesExactlyTheColumnsItsExpectationLists) {
    const std::vector<Case> cases = load_corpus();
    ASSERT_GE(cases.size(), 40U);
    Parser parser(ParseConfig{.non_cef = ParseConfig::NonCef::syslog_table, .collector_host_name = "collector-test"});
    MessageMeta meta;
    meta.receive_time_ns = dec_3_2026_ns;  // no sender address: Computer comes from the header only
    Row row;
    std::size_t syslog_rows = 0;
    for (const Case& c : cases) {
        SCOPED_TRACE("corpus line " + std::to_string(c.line_number) + ": " + c.message);
        const ParseResult result = parser.parse(c.message, meta, row);
        if (const auto error = c.expected.find("error"); error != c.expected.end()) {
            EXPECT_NE(result.outcome, ParseOutcome::row);
            EXPECT_EQ(result.reason, error->second);
            continue;
        }
        ASSERT_EQ(result.outcome, ParseOutcome::row) << result.reason;
        const bool cef = c.expected.count("Table") != 0;
        EXPECT_EQ(row.table, cef ? Table::common_security_log : Table::syslog);
        for (const auto& [name, value] : c.expected) {
            if (name == "Table") continue;
            const std::optional<Column> column = column_named(name);
            ASSERT_TRUE(column) << "no column " << name;
            EXPECT_TRUE(row.has(*column)) << name << " unset, expected \"" << value << "\"";
            EXPECT_EQ(row.get(*column), value) << name;
        }
        if (cef) continue;
        ++syslog_rows;
        for (const Column column : envelope_columns) {
            const std::string name(info(column).name);
            if (c.expected.count(name) == 0) {
                EXPECT_FALSE(row.has(column)) << name << " is \"" << row.get(column) << "\", expected unset";
            }
        }
    }
    EXPECT_GE(syslog_rows, 35U);
}

}  // namespace
}  // namespace cefd
