// One TCP frame over receive.max_frame_bytes is one event, and /metrics counts it once per
// stage that sees it: the receiver's cut (receive_tcp_oversize_frames_total) and the parser's
// flagged message (parse_truncated_messages_total), each exactly once. The worker used to count
// the same flagged message again as worker_truncated_messages_total; that family is gone.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace cefd::test {
namespace {

using namespace std::chrono_literals;

/// Every sample of every family whose name contains `part`, summed (all labels).
double sum_of_families_containing(const std::string& body, const std::string& part) {
    double sum = 0;
    std::size_t pos = 0;
    while (pos < body.size()) {
        const std::size_t end = std::min(body.find('\n', pos), body.size());
        const std::string line = body.substr(pos, end - pos);
        pos = end + 1;
        if (line.empty() || line[0] == '#') continue;
        const std::string name = line.substr(0, line.find_first_of("{ "));
        if (name.find(part) != std::string::npos) sum += std::atof(line.substr(line.rfind(' ') + 1).c_str());
    }
    return sum;
}

TEST(TruncationCounters, AnOversizeTcpFrameMovesEachCounterExactlyOnce) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure, {.receive_extra = "max_frame_bytes = 2048\n"});
    const std::string head = "<134>Mar 14 09:15:02 dt-master-01 CEF:0|Darktrace|Enterprise Immune System|6.1|26|";
    const std::vector<std::string> lines = {
        head + "Before|7|e2etrunc=before",
        head + "Oversize|7|e2etrunc=oversize msg=" + std::string(4000, 'x'),
        head + "After|7|e2etrunc=after",
    };
    send_tcp(cefd.port(), lines);
    ASSERT_TRUE(wait_until(30s, [&] { return azure.row_count() >= 3; })) << azure.row_count() << "\n" << cefd.process().err();

    const std::string body = http_get(cefd.metrics_port(), "/metrics");
    EXPECT_EQ(cefd.metric("cefd_receive_tcp_oversize_frames_total"), 1.0) << body;
    // What was dropped past the cut, the LF that ended it included: the line's length + 1 - 2048.
    EXPECT_EQ(cefd.metric("cefd_receive_tcp_cut_bytes_total"), static_cast<double>(lines[1].size() + 1 - 2048)) << body;
    EXPECT_EQ(cefd.metric("cefd_parse_truncated_messages_total"), 1.0) << body;
    // No other family counts the same cut message again.
    EXPECT_EQ(sum_of_families_containing(body, "truncated_messages"), 1.0) << body;
    EXPECT_EQ(body.find("cefd_worker_truncated_messages_total"), std::string::npos) << body;
}

}  // namespace
}  // namespace cefd::test
