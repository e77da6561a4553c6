// The whole pipeline, real binaries on loopback: loadgen-free sends from the test, cefd, and the
// Azure stand-in over HTTPS with the client-credentials flow.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace cefd::test {
namespace {

using Row = std::map<std::string, std::string>;

/// The synthetic Darktrace lines, each stamped with a key that lands in AdditionalExtensions,
/// so every row can be matched to the line it came from.
std::vector<std::string> stamped_samples(const std::string& tag) {
    std::vector<std::string> lines;
    int n = 0;
    for (auto line : sample_lines(source_path("tests/data/synthetic-darktrace-cef.log"))) {
        while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
        lines.push_back(line + " e2eseq=" + tag + "-" + std::to_string(n++));
    }
    return lines;
}

/// A deliberately naive reading of a CEF line, independent of cefd's parser: header fields split
/// on unescaped '|', and an extension value from " key=" to the next space.
struct Expected {
    std::string vendor, product, activity, severity, src, dst;
};
std::string unescape_header(const std::string& field) {
    std::string out;
    for (std::size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && i + 1 < field.size() && (field[i + 1] == '|' || field[i + 1] == '\\')) ++i;
        out += field[i];
    }
    return out;
}
std::string extension_value(const std::string& extension, const std::string& key) {
    const std::string needle = " " + key + "=";
    const std::string padded = " " + extension;
    const auto at = padded.find(needle);
    if (at == std::string::npos) return "";
    const auto start = at + needle.size();
    return padded.substr(start, padded.find(' ', start) - start);
}
Expected expected_for(const std::string& line) {
    std::string rest = line.substr(line.find("CEF:"));
    std::vector<std::string> fields;
    std::string current;
    for (std::size_t i = 0; i < rest.size(); ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) {
            current += rest[i];
            current += rest[++i];
        } else if (rest[i] == '|' && fields.size() < 7) {
            fields.push_back(current);
            current.clear();
        } else {
            current += rest[i];
        }
    }
    Expected e;
    e.vendor = unescape_header(fields.at(1));
    e.product = unescape_header(fields.at(2));
    e.activity = unescape_header(fields.at(5));
    e.severity = unescape_header(fields.at(6));
    e.src = extension_value(current, "src");
    e.dst = extension_value(current, "dst");
    return e;
}

std::string get(const Row& row, const std::string& column) {
    auto it = row.find(column);
    return it == row.end() ? "" : it->second;
}

/// Rows whose AdditionalExtensions carry e2eseq=<tag>-N, keyed by N; counts duplicates.
std::map<int, std::vector<Row>> rows_by_seq(const AzureStandin& azure, const std::string& tag) {
    std::map<int, std::vector<Row>> out;
    const std::string marker = "e2eseq=" + tag + "-";
    for (auto& row : azure.rows()) {
        const std::string extensions = get(row, "AdditionalExtensions");
        const auto at = extensions.find(marker);
        if (at == std::string::npos) continue;
        out[std::atoi(extensions.c_str() + at + marker.size())].push_back(row);
    }
    return out;
}

void expect_every_line_exactly_once(const AzureStandin& azure, const std::vector<std::string>& lines,
                                    const std::string& tag) {
    ASSERT_TRUE(wait_until(std::chrono::seconds(30), [&] { return rows_by_seq(azure, tag).size() >= lines.size(); }))
        << "rows at deadline: " << rows_by_seq(azure, tag).size() << " of " << lines.size() << "\n"
        << azure.stats();
    const auto rows = rows_by_seq(azure, tag);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        SCOPED_TRACE(lines[i]);
        auto it = rows.find(static_cast<int>(i));
        ASSERT_NE(it, rows.end());
        ASSERT_EQ(it->second.size(), 1U) << "duplicated";
        const Row& row = it->second.front();
        const Expected e = expected_for(lines[i]);
        EXPECT_EQ(get(row, "DeviceVendor"), e.vendor);
        EXPECT_EQ(get(row, "DeviceProduct"), e.product);
        EXPECT_EQ(get(row, "Activity"), e.activity);
        EXPECT_EQ(get(row, "LogSeverity"), e.severity);
        EXPECT_EQ(get(row, "SourceIP"), e.src);
        EXPECT_EQ(get(row, "DestinationIP"), e.dst);
        EXPECT_FALSE(get(row, "CollectorHostName").empty());
        EXPECT_FALSE(get(row, "Computer").empty());
        EXPECT_FALSE(get(row, "TimeGenerated").empty());
    }
}

TEST(Pipeline, DarktraceSamplesOverUdpArriveExactlyOnce) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure);
    const auto lines = stamped_samples("udp");
    send_udp(cefd.port(), lines);
    expect_every_line_exactly_once(azure, lines, "udp");
    EXPECT_EQ(cefd.stop(), 0) << cefd.process().err();
}

TEST(Pipeline, DarktraceSamplesOverTcpArriveExactlyOnce) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure);
    const auto lines = stamped_samples("tcp");
    send_tcp(cefd.port(), lines);
    expect_every_line_exactly_once(azure, lines, "tcp");
    EXPECT_EQ(cefd.stop(), 0) << cefd.process().err();
}

TEST(Pipeline, ComputerIsTheSenderAddressWhenTheLineHasNoSyslogHeader) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure);
    send_udp(cefd.port(), {"CEF:0|Darktrace|Enterprise Immune System|6.1|26|Bare line|7|dvc=192.0.2.60 e2eseq=bare-0",
                           "<134>Mar 14 09:15:02 dt-master-01 CEF:0|Darktrace|Enterprise Immune System|6.1|26|With header|7|e2eseq=bare-1"});
    ASSERT_TRUE(wait_until(std::chrono::seconds(30), [&] { return rows_by_seq(azure, "bare").size() == 2; }));
    const auto rows = rows_by_seq(azure, "bare");
    EXPECT_EQ(get(rows.at(0).front(), "Computer"), "127.0.0.1");
    EXPECT_EQ(get(rows.at(1).front(), "Computer"), "dt-master-01");
}

TEST(Pipeline, SigtermDeliversWhatWasAlreadyReceived) {
    TempDir dir;
    AzureStandin azure(dir);
    // A long linger: without the drain on SIGTERM, these rows would still sit in a batch.
    Cefd cefd(dir, azure, {.linger_ms = 60'000});
    const auto lines = stamped_samples("term");
    send_tcp(cefd.port(), lines);
    ASSERT_TRUE(wait_until(std::chrono::seconds(10), [&] { return cefd.metric("cefd_worker_messages_total") >= lines.size(); }));
    EXPECT_EQ(cefd.stop(), 0) << cefd.process().err();
    EXPECT_EQ(rows_by_seq(azure, "term").size(), lines.size()) << cefd.process().err();
}

TEST(Pipeline, RepeatsFromTheSameSenderAreDeduplicatedAndCounted) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure, {.dedupe_window_ms = 60'000});
    const std::string line = "<134>Mar 14 09:15:02 dt-master-01 CEF:0|Darktrace|Enterprise Immune System|6.1|26|Twice|7|e2eseq=dup-0";
    send_udp(cefd.port(), {line, line, line});
    ASSERT_TRUE(wait_until(std::chrono::seconds(20), [&] { return cefd.metric("cefd_dedupe_deduplicated_total") >= 2; }));
    ASSERT_TRUE(wait_until(std::chrono::seconds(20), [&] { return rows_by_seq(azure, "dup").size() == 1; }));
    EXPECT_EQ(cefd.stop(), 0);
    EXPECT_EQ(rows_by_seq(azure, "dup").at(0).size(), 1U);
}

TEST(Pipeline, MetricsEndpointServesPrometheusText) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure);
    send_udp(cefd.port(), {"not a cef line"});
    ASSERT_TRUE(wait_until(std::chrono::seconds(10), [&] { return cefd.metric("cefd_parse_not_cef_total") >= 1; }))
        << http_get(cefd.metrics_port(), "/metrics");
    const std::string text = http_get(cefd.metrics_port(), "/metrics");
    EXPECT_NE(text.find("# TYPE cefd_receive_datagrams_total counter"), std::string::npos) << text;
}

}  // namespace
}  // namespace cefd::test
