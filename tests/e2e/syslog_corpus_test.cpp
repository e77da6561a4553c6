// The syslog envelope corpus (tests/data/syslog-envelope-corpus.txt) on both paths: every message
// line goes through `cefd parse` and through a real cefd over UDP and over TCP into the Azure
// stand-in, with non_cef = "syslog_table", and the rows must be the same. The unit test
// (tests/unit/parse/syslog_corpus_test.cpp) checks the rows themselves; this one checks that the
// network path (receiver framing, lanes, batcher, the stand-in's schema checks) changes nothing.
// Normalised as in parse_vs_network_test.cpp: TimeGenerated is dropped, and the sender address
// that `cefd parse` lacks is added where the network path puts it.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>
#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace cefd::test {
namespace {

using Row = std::map<std::string, std::string>;
constexpr const char* sender = "127.0.0.1";

/// The corpus's message lines: not comments, not blank, not the indented expectations.
std::vector<std::string> corpus_messages() {
    std::vector<std::string> messages;
    for (auto& line : read_lines(source_path("tests/data/syslog-envelope-corpus.txt")))
        if (!line.empty() && line[0] != '#' && line[0] != ' ') messages.push_back(std::move(line));
    return messages;
}

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

std::vector<Row> parsed_rows(const TempDir& dir, const std::vector<std::string>& lines, const std::string& config) {
    std::string input;
    for (const auto& line : lines) input += line + "\n";
    write_file(dir.file("corpus.txt"), input);
    std::string output;
    const std::string command = cefd_binary() + " parse --config " + config + " " + dir.file("corpus.txt");
    EXPECT_EQ(run_command(command, &output), 0) << command;
    std::vector<Row> rows;
    simdjson::dom::parser parser;
    std::size_t printed = 0;
    for (std::size_t start = 0; start < output.size();) {
        std::size_t end = output.find('\n', start);
        if (end == std::string::npos) end = output.size();
        Row row = row_from_json(parser, output.substr(start, end - start));
        start = end + 1;
        ++printed;
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

enum class Via { udp, tcp };

void run_corpus(Via via) {
    const std::vector<std::string> lines = corpus_messages();
    ASSERT_GE(lines.size(), 40U);
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure, {.extra_toml = "[parse]\nnon_cef = \"syslog_table\"\n"});
    const std::vector<Row> expected = parsed_rows(dir, lines, cefd.config_path());
    std::size_t syslog_rows = 0;
    for (const auto& row : expected) syslog_rows += row.count("SyslogMessage");
    ASSERT_GE(syslog_rows, 35U) << "the corpus is mostly Syslog rows";
    ASSERT_LT(expected.size(), lines.size()) << "the corpus has a line with no row";
    if (via == Via::udp) send_udp(cefd.port(), lines);
    else send_tcp(cefd.port(), lines);
    ASSERT_TRUE(wait_until(std::chrono::seconds(60), [&] { return azure.row_count() >= expected.size(); }))
        << "rows at deadline: " << azure.row_count() << " of " << expected.size() << "\n" << azure.stats();
    EXPECT_EQ(cefd.stop(), 0) << cefd.process().err();  // delivers what is in flight: a surplus shows below

    std::vector<Row> actual = azure.rows();
    for (auto& row : actual) row.erase("TimeGenerated");
    EXPECT_EQ(actual.size(), expected.size());
    std::multimap<Row, int> unmatched;
    for (const auto& row : actual) unmatched.emplace(row, 0);
    for (const auto& row : expected) {
        const auto it = unmatched.find(row);
        if (it == unmatched.end()) {
            ADD_FAILURE() << "cefd parse gave a row the network path did not:\n" << describe(row);
            continue;
        }
        unmatched.erase(it);
    }
    for (const auto& [row, ignored] : unmatched)
        ADD_FAILURE() << "the network path gave a row cefd parse did not:\n" << describe(row);
}

TEST(SyslogCorpus, EveryEnvelopeOverUdpGivesTheRowCefdParsePrints) { run_corpus(Via::udp); }

TEST(SyslogCorpus, EveryEnvelopeOverTcpGivesTheRowCefdParsePrints) { run_corpus(Via::tcp); }

}  // namespace
}  // namespace cefd::test
