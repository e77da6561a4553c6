// `cefd parse` prints exactly what cefd sends: every sample line goes through `cefd parse` and
// through a real cefd over UDP and over TCP into the Azure stand-in, and the rows must be the
// same. Two differences are expected and normalised: TimeGenerated (the receive time) is dropped,
// and the sender address, which `cefd parse` does not have, is added where the network path puts
// it (Computer when the line has no syslog host; HostIP on Syslog rows).
//
// The syslog envelope corpus (tests/data/syslog-envelope-corpus.txt) runs the same way with
// non_cef = "syslog_table": the unit test (tests/unit/parse/syslog_corpus_test.cpp) checks the
// rows themselves; this checks that the network path (receiver framing, lanes, batcher, the
// stand-in's schema checks) changes nothing.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace cefd::test {
namespace {

using Row = std::map<std::string, std::string>;
constexpr const char* sender = "127.0.0.1";

std::vector<std::string> all_sample_lines() {
    std::vector<std::string> lines;
    for (const char* file : {"tests/data/synthetic-darktrace-cef.log", "tests/data/RadiflowIsid_RawLogs.txt",
                             "tests/data/WithSecureViaConnectorSampleData.txt"})
        for (auto& line : sample_lines(source_path(file))) lines.push_back(std::move(line));
    return lines;
}

/// Non-CEF lines for the Syslog table: RFC 3164 with and without host, tag and pid; RFC 5424
/// with structured data; no PRI; plus one CEF line, which still goes to CommonSecurityLog.
std::vector<std::string> syslog_lines() {
    return {
        "<38>Mar 14 09:15:02 web-01 sshd[2201]: Accepted publickey for root from 192.0.2.9 port 52144",
        "<86>Mar  4 09:15:07 web-02 CRON[99]: pam_unix(cron:session): session opened for user root",
        "<13>Mar 14 09:15:02 app: a line whose header has no host",
        R"(<165>1 2024-03-14T10:22:03.412345+01:00 mymachine.example.com evntslog 77 ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event)",
        "<11>1 2024-03-14T09:22:03Z - su - - - 'su root' failed for lonvick on /dev/pts/8",
        "kernel: a line with no PRI and no timestamp",
        "<134>Mar 14 09:15:02 dt-master-01 CEF:0|Darktrace|Enterprise Immune System|6.1|26|Routed as CEF|7|src=192.0.2.1",
    };
}

/// A stand-in row or a `cefd parse` line as column -> text, the way the harness reads rows.
Row row_from_json(simdjson::dom::parser& parser, const std::string& line) {
    simdjson::dom::element element;
    if (parser.parse(line).get(element) != simdjson::SUCCESS) return {{"__invalid_json__", line}};
    Row row;
    for (auto [key, value] : element.get_object()) {
        if (value.is_string()) row[std::string(key)] = std::string(std::string_view(value.get_string()));
        else row[std::string(key)] = simdjson::minify(value);
    }
    return row;
}

/// What `cefd parse` prints for `lines`: one row per line that became a row (errors skipped),
/// normalised as described at the top.
std::vector<Row> parsed_rows(const TempDir& dir, const std::vector<std::string>& lines, const std::string& config) {
    std::string input;
    for (const auto& line : lines) input += line + "\n";
    write_file(dir.file("lines.txt"), input);
    std::string output;
    const std::string command = cefd_binary() + " parse" + (config.empty() ? "" : " --config " + config) + " " +
                                dir.file("lines.txt");
    EXPECT_EQ(run_command(command, &output), 0) << command;
    std::vector<Row> rows;
    simdjson::dom::parser parser;
    std::size_t printed = 0;
    std::size_t start = 0;
    while (start < output.size()) {
        std::size_t end = output.find('\n', start);
        if (end == std::string::npos) end = output.size();
        const std::string line = output.substr(start, end - start);
        start = end + 1;
        ++printed;
        Row row = row_from_json(parser, line);
        if (row.count("error") != 0) continue;
        row.erase("TimeGenerated");
        if (row.count("Computer") == 0) row["Computer"] = sender;
        if (row.count("SyslogMessage") != 0) row["HostIP"] = sender;
        rows.push_back(std::move(row));
    }
    EXPECT_EQ(printed, lines.size()) << "cefd parse prints one line per input line";
    return rows;
}

std::string describe(const Row& row) {
    std::string text;
    for (const auto& [key, value] : row) text += "  " + key + "=" + value + "\n";
    return text;
}

/// The stand-in's rows must be exactly `expected`, as a multiset (rows arrive in any order).
void expect_same_rows(std::vector<Row> expected, const AzureStandin& azure) {
    std::vector<Row> actual = azure.rows();
    for (auto& row : actual) row.erase("TimeGenerated");
    EXPECT_EQ(actual.size(), expected.size());
    std::multimap<Row, int> unmatched;
    for (const auto& row : actual) unmatched.emplace(row, 0);
    for (const auto& row : expected) {
        auto it = unmatched.find(row);
        if (it == unmatched.end()) {
            ADD_FAILURE() << "cefd parse gave a row the network path did not:\n" << describe(row);
            continue;
        }
        unmatched.erase(it);
    }
    for (const auto& [row, ignored] : unmatched)
        ADD_FAILURE() << "the network path gave a row cefd parse did not:\n" << describe(row);
}

enum class Via { udp, tcp };

std::size_t count_syslog_rows(const std::vector<Row>& rows) {
    std::size_t syslog = 0;
    for (const auto& row : rows) syslog += row.count("SyslogMessage");
    return syslog;
}

/// `check_expected` asserts what `cefd parse` printed is what the case means to test (how many
/// Syslog rows, say) before anything is sent.
void run_case(Via via, const std::vector<std::string>& lines, const CefdOptions& options,
              const std::function<void(const std::vector<Row>&)>& check_expected) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure, options);
    // The same config for `cefd parse`, so both use the same [parse] settings.
    const std::vector<Row> expected = parsed_rows(dir, lines, cefd.config_path());
    ASSERT_FALSE(expected.empty());
    check_expected(expected);
    if (::testing::Test::HasFatalFailure()) return;
    if (via == Via::udp) send_udp(cefd.port(), lines);
    else send_tcp(cefd.port(), lines);
    ASSERT_TRUE(wait_until(std::chrono::seconds(60), [&] { return azure.row_count() >= expected.size(); }))
        << "rows at deadline: " << azure.row_count() << " of " << expected.size() << "\n" << azure.stats();
    // SIGTERM delivers whatever is still in flight, so a surplus row would show up below.
    EXPECT_EQ(cefd.stop(), 0) << cefd.process().err();
    expect_same_rows(expected, azure);
}

/// `syslog_rows`: how many of the rows must be Syslog rows (a check that the case tests them).
auto syslog_rows_are(std::size_t syslog_rows) {
    return [syslog_rows](const std::vector<Row>& expected) { ASSERT_EQ(count_syslog_rows(expected), syslog_rows); };
}

const CefdOptions syslog_table{.extra_toml = "[parse]\nnon_cef = \"syslog_table\"\n"};

TEST(ParseVsNetwork, EverySampleLineOverUdpGivesTheRowCefdParsePrints) {
    run_case(Via::udp, all_sample_lines(), {}, syslog_rows_are(0));
}

TEST(ParseVsNetwork, EverySampleLineOverTcpGivesTheRowCefdParsePrints) {
    run_case(Via::tcp, all_sample_lines(), {}, syslog_rows_are(0));
}

TEST(ParseVsNetwork, SyslogTableLinesOverUdpGiveTheRowsCefdParsePrints) {
    run_case(Via::udp, syslog_lines(), syslog_table, syslog_rows_are(6));
}

TEST(ParseVsNetwork, SyslogTableLinesOverTcpGiveTheRowsCefdParsePrints) {
    run_case(Via::tcp, syslog_lines(), syslog_table, syslog_rows_are(6));
}

/// The corpus's message lines: not comments, not blank, not the indented expectations.
std::vector<std::string> corpus_messages() {
    std::vector<std::string> messages;
    for (auto& line : read_lines(source_path("tests/data/syslog-envelope-corpus.txt")))
        if (!line.empty() && line[0] != '#' && line[0] != ' ') messages.push_back(std::move(line));
    return messages;
}

void run_corpus(Via via) {
    const std::vector<std::string> lines = corpus_messages();
    ASSERT_GE(lines.size(), 40U);
    run_case(via, lines, syslog_table, [&lines](const std::vector<Row>& expected) {
        ASSERT_GE(count_syslog_rows(expected), 35U) << "the corpus is mostly Syslog rows";
        ASSERT_LT(expected.size(), lines.size()) << "the corpus has a line with no row";
    });
}

TEST(SyslogCorpus, EveryEnvelopeOverUdpGivesTheRowCefdParsePrints) { run_corpus(Via::udp); }

TEST(SyslogCorpus, EveryEnvelopeOverTcpGivesTheRowCefdParsePrints) { run_corpus(Via::tcp); }

}  // namespace
}  // namespace cefd::test
