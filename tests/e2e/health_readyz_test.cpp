// /healthz and /readyz on the real cefd: /readyz lists every check, and flips to 503 when the
// Azure stand-in goes into an outage while events keep arriving, and back to 200 once it
// recovers and the backlog is delivered.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace cefd::test {
namespace {

using namespace std::chrono_literals;

struct Answer {
    int status = 0;  // 0: no answer
    std::string body;
};

/// GET with curl, a 5 s deadline; the status and the body.
Answer get(int port, const std::string& path) {
    std::string out;
    run_command("curl -s -m 5 -w '\\n%{http_code}' http://127.0.0.1:" + std::to_string(port) + path, &out);
    Answer answer;
    const auto newline = out.rfind('\n');
    if (newline == std::string::npos) return answer;
    answer.status = std::atoi(out.c_str() + newline + 1);
    answer.body = out.substr(0, newline);
    return answer;
}

std::string control(const AzureStandin& azure, const std::string& query) {
    std::string out;
    run_command("curl -s -d '' --cacert " + azure.ca_file() + " '" + azure.url() + "/control?" + query + "'", &out);
    return out;
}

CefdOptions fast_retries() {
    CefdOptions options;
    // Short backoff, so recovery is seen soon after the outage ends.
    options.azure_extra = "retry_initial_ms = 100\nretry_max_ms = 500\n";
    // The harness writes [metrics] last, so these lines land in it.
    options.extra_toml = "ready_backlog_batches_max = 1\n";
    return options;
}

TEST(Healthz, AnswersOkWhileRunning) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure);
    const Answer answer = get(cefd.metrics_port(), "/healthz");
    EXPECT_EQ(answer.status, 200);
    EXPECT_EQ(answer.body, "ok\n");
}

TEST(Readyz, ListsEveryCheckWithItsState) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure);
    Answer answer;
    ASSERT_TRUE(wait_until(20s, [&] { return (answer = get(cefd.metrics_port(), "/readyz")).status == 200; }))
        << "last answer: " << answer.status << "\n" << answer.body;
    EXPECT_EQ(answer.body.rfind("ready\n", 0), 0U) << answer.body;
    EXPECT_NE(answer.body.find("\nlistening ok: 2 of 2 lanes receiving\n"), std::string::npos) << answer.body;
    EXPECT_NE(answer.body.find("\nspool ok: writable\n"), std::string::npos) << answer.body;
    EXPECT_NE(answer.body.find("\nsend ok"), std::string::npos) << answer.body;
    EXPECT_GE(cefd.metric("cefd_metrics_requests_total"), 1);
}

TEST(Readyz, FailsDuringAnOutageAndRecoversAfterIt) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure, fast_retries());
    const std::vector<std::string> lines = sample_lines(source_path("tests/data/synthetic-darktrace-cef.log"));
    ASSERT_FALSE(lines.empty());
    Answer answer;
    ASSERT_TRUE(wait_until(20s, [&] { return (answer = get(cefd.metrics_port(), "/readyz")).status == 200; }))
        << "not ready before the outage: " << answer.status << "\n" << answer.body;

    ASSERT_NE(control(azure, "outage_s=600").find("outage"), std::string::npos);
    // Events keep coming while Azure is down, so batches pile up in the spool.
    std::size_t sent = 0;
    ASSERT_TRUE(wait_until(60s, [&] {
        send_udp(cefd.port(), {lines[sent % lines.size()]});
        ++sent;
        return (answer = get(cefd.metrics_port(), "/readyz")).status == 503;
    })) << "still ready during the outage: " << answer.status << "\n" << answer.body;
    EXPECT_EQ(answer.body.rfind("not ready\n", 0), 0U) << answer.body;
    EXPECT_NE(answer.body.find("\nsend failed: "), std::string::npos) << answer.body;
    EXPECT_NE(answer.body.find("\nspool ok"), std::string::npos) << answer.body;  // the others still pass

    ASSERT_NE(control(azure, "outage_s=0").find("outage"), std::string::npos);
    ASSERT_TRUE(wait_until(60s, [&] { return (answer = get(cefd.metrics_port(), "/readyz")).status == 200; }))
        << "not ready after the outage: " << answer.status << "\n" << answer.body;
    ASSERT_TRUE(wait_until(60s, [&] { return azure.row_count() >= sent; }))
        << "rows delivered: " << azure.row_count() << " of " << sent;
}

}  // namespace
}  // namespace cefd::test
