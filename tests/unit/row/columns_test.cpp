// engine/row/columns.h: its CommonSecurityLog part is generated from
// engine/row/commonsecuritylog-columns.tsv (they must agree); its Syslog part must be exactly the
// Syslog table's columns.
#include "engine/row/columns.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "engine/row/row.h"
#include "tests/support/support.h"

namespace cefd {
namespace {

std::string_view type_name(ColumnType type) {
    switch (type) {
        case ColumnType::string: return "string";
        case ColumnType::int_: return "int";
        case ColumnType::long_: return "long";
        case ColumnType::real: return "real";
        case ColumnType::datetime: return "datetime";
    }
    return "?";
}

TEST(Columns, AgreeWithTheColumnListTsv) {
    const auto lines = test::read_lines(test::source_path("engine/row/commonsecuritylog-columns.tsv"));
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines[0], "column\ttype\tcef_key");
    std::size_t index = 0;
    for (std::size_t i = 1; i < lines.size(); ++i) {
        if (lines[i].empty()) continue;
        std::string line = lines[i];
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const std::size_t tab1 = line.find('\t');
        const std::size_t tab2 = line.find('\t', tab1 + 1);
        ASSERT_NE(tab2, std::string::npos) << line;
        const std::string name = line.substr(0, tab1);
        const std::string type = line.substr(tab1 + 1, tab2 - tab1 - 1);
        const std::string key = line.substr(tab2 + 1);
        ASSERT_LT(index, common_security_log_column_count) << "the TSV has more columns than columns.h: " << name;
        EXPECT_EQ(columns[index].name, name) << "column " << index;
        EXPECT_EQ(type_name(columns[index].type), type) << name;
        EXPECT_EQ(columns[index].cef_key, key) << name;
        ++index;
    }
    EXPECT_EQ(index, common_security_log_column_count);
}

TEST(Columns, EnumOrderMatchesTheTable) {
    EXPECT_EQ(info(Column::Activity).name, "Activity");
    EXPECT_EQ(info(Column::sys_BilledSize).name, "_BilledSize");
    EXPECT_EQ(info(Column::ExtID).name, "ExtID");
    EXPECT_EQ(info(Column::TimeGenerated).name, "TimeGenerated");
    EXPECT_EQ(info(Column::Type).name, "Type");
    EXPECT_EQ(static_cast<std::size_t>(Column::Type) + 1, common_security_log_column_count);
    EXPECT_EQ(static_cast<std::size_t>(Column::SyslogMessage) + 1, column_count);
}

TEST(Columns, CommonSecurityLogHasExactlyTheTsvColumns) {
    for (std::size_t i = 0; i < column_count; ++i) {
        const auto c = static_cast<Column>(i);
        EXPECT_EQ(in_table(c, Table::common_security_log), i < common_security_log_column_count) << info(c).name;
    }
}

// The Syslog table's columns a collector may send (Microsoft's Syslog table reference; the
// stand-in accepts exactly these), with their types.
TEST(Columns, SyslogHasExactlyItsTwelveColumns) {
    const std::map<std::string_view, std::string_view> expected = {
        {"TimeGenerated", "datetime"}, {"Computer", "string"},      {"HostName", "string"},
        {"HostIP", "string"},          {"Facility", "string"},      {"SeverityLevel", "string"},
        {"SyslogMessage", "string"},   {"ProcessName", "string"},   {"ProcessID", "int"},
        {"EventTime", "datetime"},     {"CollectorHostName", "string"}, {"SourceSystem", "string"},
    };
    std::map<std::string_view, std::string_view> actual;
    for (std::size_t i = 0; i < column_count; ++i) {
        const auto c = static_cast<Column>(i);
        if (in_table(c, Table::syslog)) actual[info(c).name] = type_name(info(c).type);
    }
    EXPECT_EQ(actual, expected);
    EXPECT_EQ(actual.size(), syslog_column_count);
}

TEST(Columns, SyslogOnlyColumnsHaveNoCefKey) {
    // A Syslog-only column is filled from the syslog header or the sender, never from a CEF key
    // (stages/parse/mapping.cpp maps only the CommonSecurityLog columns).
    for (std::size_t i = common_security_log_column_count; i < column_count; ++i) {
        const std::string_view key = columns[i].cef_key;
        EXPECT_TRUE(key.starts_with("syslog:") || key.starts_with("sender:")) << columns[i].name;
    }
}

}  // namespace
}  // namespace cefd
