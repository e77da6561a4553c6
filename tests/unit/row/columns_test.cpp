// engine/row/columns.h is generated from engine/row/commonsecuritylog-columns.tsv: they must agree.
#include "engine/row/columns.h"

#include <gtest/gtest.h>

#include <string>

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
        ASSERT_LT(index, column_count) << "the TSV has more columns than columns.h: " << name;
        EXPECT_EQ(columns[index].name, name) << "column " << index;
        EXPECT_EQ(type_name(columns[index].type), type) << name;
        EXPECT_EQ(columns[index].cef_key, key) << name;
        ++index;
    }
    EXPECT_EQ(index, column_count);
}

TEST(Columns, EnumOrderMatchesTheTable) {
    EXPECT_EQ(info(Column::Activity).name, "Activity");
    EXPECT_EQ(info(Column::sys_BilledSize).name, "_BilledSize");
    EXPECT_EQ(info(Column::ExtID).name, "ExtID");
    EXPECT_EQ(info(Column::TimeGenerated).name, "TimeGenerated");
    EXPECT_EQ(info(Column::Type).name, "Type");
    EXPECT_EQ(static_cast<std::size_t>(Column::Type) + 1, column_count);
}

}  // namespace
}  // namespace cefd
