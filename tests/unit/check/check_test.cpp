// cefd-check against hand-written rows: each rule fires on the row that breaks it and on no other.
#include <gtest/gtest.h>

#include "tests/support/support.h"

namespace cefd::test {
namespace {

const std::string good =
    R"({"TimeGenerated":"2026-11-29T08:00:00.000000Z","DeviceVendor":"Darktrace","DeviceProduct":"Enterprise Immune System",)"
    R"("Activity":"Compliance/Tor","LogSeverity":"7","CollectorHostName":"c1","AdditionalExtensions":"darktraceUrl=https://x/#modelbreach/1;message=m;extra=1"})";

int check(const std::string& rows, std::string* out, const std::string& flags = "") {
    TempDir dir;
    write_file(dir.file("rows.jsonl"), rows);
    return run_command(binary_path("tools/check/cefd-check") + " " + flags + " " + dir.file("rows.jsonl"), out);
}

TEST(Check, AcceptsARowTheWorkbookReadsFully) {
    std::string out;
    EXPECT_EQ(check(good + "\n", &out), 0) << out;
    EXPECT_NE(out.find(R"("darktrace_rows":1,"other_vendor":0,"invalid_json":0,"rows_with_errors":0,"errors":{},"warnings":{}})"),
              std::string::npos)
        << out;
}

TEST(Check, FlagsEachRuleOnTheRowThatBreaksIt) {
    auto with = [&](const std::string& from, const std::string& to) {
        std::string row = good;
        row.replace(row.find(from), from.size(), to);
        return row;
    };
    const std::string rows = with(R"("LogSeverity":"7")", R"("LogSeverity":"High")") + "\n" +
                             with(R"("CollectorHostName":"c1")", R"("CollectorHostName":"")") + "\n" +
                             with(R"("DeviceVendor":"Darktrace")", R"("DeviceVendor":"darktrace")") + "\n" +
                             with(";message=m;extra=1", "") + "\n" +  // darktraceUrl becomes the last pair
                             with(R"("Enterprise Immune System")", R"("AI Analyst")") + "\n" +
                             with(R"("DeviceVendor":"Darktrace")", R"("DeviceVendor":"Fortinet")") + "\n" +
                             "not json\n";
    std::string out;
    EXPECT_EQ(check(rows, &out), 1) << out;
    EXPECT_NE(out.find("line 1: error severity"), std::string::npos) << out;
    EXPECT_NE(out.find("line 2: error collector"), std::string::npos) << out;
    EXPECT_NE(out.find("line 3: error vendor"), std::string::npos) << out;
    EXPECT_NE(out.find("line 4: warning last_key: darktraceUrl"), std::string::npos) << out;
    EXPECT_NE(out.find("line 5: warning aiincident"), std::string::npos) << out;
    EXPECT_EQ(out.find("line 6:"), std::string::npos) << "other vendors are skipped: " << out;
    EXPECT_NE(out.find("line 7: error json"), std::string::npos) << out;
    EXPECT_NE(out.find(R"("rows":7,"darktrace_rows":5,"other_vendor":1,"invalid_json":1,"rows_with_errors":3)"),
              std::string::npos)
        << out;
}

TEST(Check, QuietPrintsOnlyTheSummary) {
    std::string out;
    EXPECT_EQ(check(good + "\n" + good + "\n", &out, "--quiet"), 0);
    EXPECT_EQ(out.rfind("{\"rows\":2,", 0), 0U) << out;
}

}  // namespace
}  // namespace cefd::test
