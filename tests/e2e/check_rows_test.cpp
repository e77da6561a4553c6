// `cefd check rows` is the row linter of `cefd-check`: on the same input, the same exit code and
// the same stdout, for good rows, bad rows, --quiet, stdin and bad usage; `cefd check --help`
// lists it.
#include <gtest/gtest.h>

#include <string>

#include "tests/e2e/harness.h"

namespace cefd::test {
namespace {

const std::string good_row =
    R"({"TimeGenerated":"2026-11-29T08:00:00.000000Z","DeviceVendor":"Darktrace","DeviceProduct":"Enterprise Immune System",)"
    R"("Activity":"Compliance/Tor","LogSeverity":"7","CollectorHostName":"c1","AdditionalExtensions":"darktraceUrl=https://x/#modelbreach/1;message=m;extra=1"})";

struct Ran {
    int code = -1;
    std::string out;
};

/// `shell_tail` appended to both commands: arguments, redirections.
Ran run(const std::string& command, const std::string& shell_tail) {
    Ran ran;
    ran.code = run_command(command + " " + shell_tail, &ran.out);
    return ran;
}

std::string linter() { return binary_path("tools/check/cefd-check"); }
std::string folded() { return cefd_binary() + " check rows"; }

/// Both forms on the same arguments: equal exit codes and stdout; returns cefd check rows' run.
Ran expect_same(const std::string& shell_tail) {
    const Ran a = run(linter(), shell_tail);
    const Ran b = run(folded(), shell_tail);
    EXPECT_EQ(a.code, b.code) << shell_tail << "\ncefd-check:\n" << a.out << "\ncefd check rows:\n" << b.out;
    EXPECT_EQ(a.out, b.out) << shell_tail;
    return b;
}

TEST(CheckRows, GoodRowsGiveTheSameVerdictAsCefdCheck) {
    TempDir dir;
    write_file(dir.file("good.jsonl"), good_row + "\n" + good_row + "\n");
    const Ran ran = expect_same(dir.file("good.jsonl"));
    EXPECT_EQ(ran.code, 0) << ran.out;
    EXPECT_NE(ran.out.find(R"({"rows":2,"darktrace_rows":2,"other_vendor":0,"invalid_json":0,"rows_with_errors":0)"),
              std::string::npos) << ran.out;
}

TEST(CheckRows, RowsFromCefdParseGiveTheSameVerdictAsCefdCheck) {
    TempDir dir;
    ASSERT_EQ(run_command(cefd_binary() + " parse " + source_path("tests/data/synthetic-darktrace-cef.log") + " > " +
                          dir.file("parsed.jsonl")), 0);
    const Ran ran = expect_same(dir.file("parsed.jsonl"));
    EXPECT_NE(ran.out.find(R"("darktrace_rows":)"), std::string::npos) << ran.out;
    expect_same("--quiet " + dir.file("parsed.jsonl"));
    expect_same("< " + dir.file("parsed.jsonl"));  // stdin
}

TEST(CheckRows, BadRowsGiveTheSameErrorsAndExitCodeAsCefdCheck) {
    TempDir dir;
    std::string bad_severity = good_row;
    bad_severity.replace(bad_severity.find(R"("LogSeverity":"7")"), 17, R"("LogSeverity":"High")");
    write_file(dir.file("bad.jsonl"), good_row + "\n" + bad_severity + "\nnot json\n");
    const Ran ran = expect_same(dir.file("bad.jsonl"));
    EXPECT_EQ(ran.code, 1) << ran.out;
    EXPECT_NE(ran.out.find("line 2: error severity: LogSeverity \"High\" is not an integer"), std::string::npos) << ran.out;
    EXPECT_NE(ran.out.find("line 3: error json: not a JSON object"), std::string::npos) << ran.out;
    const Ran quiet = expect_same("--quiet " + dir.file("bad.jsonl"));
    EXPECT_EQ(quiet.code, 1);
    EXPECT_EQ(quiet.out.find("line "), std::string::npos) << quiet.out;
}

TEST(CheckRows, BadUsageAndUnreadableFilesExitTwoNamingTheCommand) {
    TempDir dir;
    EXPECT_EQ(expect_same("--bogus 2>/dev/null").code, 2);
    EXPECT_EQ(expect_same(dir.file("absent.jsonl") + " 2>/dev/null").code, 2);
    std::string err;
    EXPECT_EQ(run_command(folded() + " --bogus 2>&1", &err), 2);
    EXPECT_NE(err.find("usage: cefd check rows [--quiet] [FILE...]"), std::string::npos) << err;
    EXPECT_EQ(run_command(folded() + " " + dir.file("absent.jsonl") + " 2>&1", &err), 2);
    EXPECT_NE(err.find("cefd check rows: cannot open " + dir.file("absent.jsonl")), std::string::npos) << err;
    // The stand-alone binary keeps its own name.
    EXPECT_EQ(run_command(linter() + " --bogus 2>&1", &err), 2);
    EXPECT_NE(err.find("usage: cefd-check [--quiet] [FILE...]"), std::string::npos) << err;
}

TEST(CheckRows, CheckHelpListsIt) {
    std::string out;
    EXPECT_EQ(run_command(cefd_binary() + " check --help", &out), 0);
    EXPECT_NE(out.find("cefd check rows [--quiet] [FILE...]"), std::string::npos) << out;
    EXPECT_EQ(run_command(cefd_binary() + " --help", &out), 0);
    EXPECT_NE(out.find("cefd check rows"), std::string::npos) << out;
}

}  // namespace
}  // namespace cefd::test
