// Delivery under trouble, with the real binaries: cefd, the Azure stand-in (HTTPS, client
// credentials) and cefd-loadgen, whose --verify reads the stand-in's rows and reports every
// event as delivered, lost or duplicated. Troubles: short token lifetimes, a 429 storm, a 20 s
// outage, connection resets after the stand-in stored a batch, a DCR that answers 403 for good.
// Every test also checks that no batch went over 1 MiB of JSON (the stand-in refuses those
// with 413 json_too_large, and cefd would count a split).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace cefd::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* dcr = "dcr-00000000000000000000000000000000";

/// The one JSON line cefd-loadgen prints, as numbers.
struct LoadResult {
    std::uint64_t sent = 0, delivered = 0, lost = 0, duplicated = 0, send_errors = 0;
    std::string raw;
};

LoadResult parse_load_result(const std::string& out) {
    LoadResult r;
    r.raw = out;
    const auto start = out.rfind("{\"run_id\"");
    if (start == std::string::npos) return r;
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(out.substr(start, out.find('\n', start) - start)).get(doc)) return r;
    const auto get = [&](const char* key, std::uint64_t& into) {
        if (doc[key].get(into) != simdjson::SUCCESS) into = 0;
    };
    get("sent", r.sent);
    get("delivered", r.delivered);
    get("lost", r.lost);
    get("duplicated", r.duplicated);
    get("send_errors", r.send_errors);
    return r;
}

std::vector<std::string> loadgen_args(const Cefd& cefd, const AzureStandin& azure, const std::string& run_id,
                                      std::vector<std::string> extra) {
    std::vector<std::string> argv{loadgen_binary(), "--target", "127.0.0.1:" + std::to_string(cefd.port()), "--proto",
                                  "tcp", "--run-id", run_id, "--verify", azure.rows_path()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
}

/// Runs cefd-loadgen to completion (it returns once every event is seen, or after --wait-s of
/// silence) and returns its verdict.
LoadResult run_loadgen(const TempDir& dir, const Cefd& cefd, const AzureStandin& azure, const std::string& run_id,
                       std::vector<std::string> extra, std::chrono::seconds timeout) {
    Process loadgen(loadgen_args(cefd, azure, run_id, std::move(extra)), dir.path(), "loadgen-" + run_id);
    const int code = loadgen.wait(timeout);
    LoadResult result = parse_load_result(loadgen.out());
    EXPECT_NE(code, -1) << "loadgen still running after the deadline; stderr: " << loadgen.err();
    EXPECT_FALSE(result.raw.empty()) << "loadgen printed nothing; stderr: " << loadgen.err();
    return result;
}

std::string control(const AzureStandin& azure, const std::string& query) {
    std::string out;
    run_command("curl -s -d '' --cacert " + azure.ca_file() + " '" + azure.url() + "/control?" + query + "'", &out);
    return out;
}

std::uint64_t stats_value(const AzureStandin& azure, const char* pointer) {
    simdjson::dom::parser parser;
    std::uint64_t value = 0;
    if (parser.parse(azure.stats()).at_pointer(pointer).get(value)) return 0;  // absent: 0
    return value;
}

/// Nothing over 1 MiB of JSON reached the stand-in (it would answer 413 json_too_large and
/// cefd would split), and on average a request held at most that.
void expect_batches_within_one_mib(const AzureStandin& azure, const Cefd& cefd) {
    const std::string stats = azure.stats();
    EXPECT_EQ(stats_value(azure, "/rejected/json_too_large"), 0U) << stats;
    EXPECT_EQ(stats_value(azure, "/rejected/body_too_large"), 0U) << stats;
    EXPECT_EQ(cefd.metric("cefd_send_split_batches_total"), 0) << stats;
    const std::uint64_t accepted = stats_value(azure, "/accepted_requests");
    if (accepted > 0) {
        EXPECT_LE(stats_value(azure, "/bytes_json") / accepted, 1'048'576U) << stats;
    }
}

TEST(Delivery, ShortTokenLifetimesDuringLoadLoseNothing) {
    TempDir dir;
    AzureStandin azure(dir, {"--token-lifetime-s", "3"});
    Cefd cefd(dir, azure);
    const LoadResult r = run_loadgen(dir, cefd, azure, "tok", {"--rate", "4000", "--duration", "8", "--wait-s", "20"}, 60s);
    EXPECT_GT(r.sent, 0U) << r.raw;
    EXPECT_EQ(r.lost, 0U) << r.raw;
    EXPECT_EQ(r.delivered, r.sent) << r.raw;
    // Lifetime 3 s: refreshed after half of it, so at least one refresh per 1.5 s of load.
    EXPECT_GE(cefd.metric("cefd_send_token_refreshes_total"), 4) << azure.stats();
    EXPECT_EQ(stats_value(azure, "/rejected/token_expired"), 0U) << "a token was used after it expired: " << azure.stats();
    expect_batches_within_one_mib(azure, cefd);
    EXPECT_EQ(cefd.stop(), 0) << cefd.process().err();
}

TEST(Delivery, A429StormWithRetryAfterDuringLoadLosesNothing) {
    TempDir dir;
    // Every 4th request is throttled for 1 s, which pauses all sending: the spool absorbs it.
    AzureStandin azure(dir, {"--fault-429-every", "4", "--retry-after-s", "1"});
    Cefd cefd(dir, azure);
    const LoadResult r = run_loadgen(dir, cefd, azure, "storm", {"--rate", "3000", "--duration", "5", "--wait-s", "20"}, 60s);
    EXPECT_EQ(r.lost, 0U) << r.raw;
    EXPECT_EQ(r.duplicated, 0U) << "a 429 stores nothing, so its retry is no duplicate: " << r.raw;
    EXPECT_GE(stats_value(azure, "/faults/429"), 1U) << azure.stats();
    EXPECT_EQ(cefd.metric("cefd_send_throttled_total"), static_cast<double>(stats_value(azure, "/faults/429")));
    expect_batches_within_one_mib(azure, cefd);
    EXPECT_EQ(cefd.stop(), 0) << cefd.process().err();
}

/// A TCP load of `load_s` seconds; `outage_s` into it... the stand-in answers 503 to everything
/// (token endpoint included) for `outage_s`. Zero events may be lost.
void outage_during_tcp_load(int load_s, int outage_at_s, int outage_s) {
    TempDir dir;
    AzureStandin azure(dir);
    // Retries back off to at most 2 s, so delivery resumes soon after the outage ends.
    Cefd cefd(dir, azure, {.azure_extra = "retry_initial_ms = 200\nretry_max_ms = 2000"});
    Process loadgen(loadgen_args(cefd, azure, "outage",
                                 {"--rate", "2000", "--duration", std::to_string(load_s), "--wait-s",
                                  std::to_string(outage_s + 20)}),
                    dir.path(), "loadgen-outage");
    // Start the outage once deliveries are flowing and outage_at_s into the load (loadgen's own
    // progress decides, not a sleep: its rows appear at the stand-in).
    ASSERT_TRUE(wait_until(std::chrono::seconds(outage_at_s + 20),
                           [&] { return azure.row_count() >= static_cast<std::size_t>(2000 * outage_at_s); }))
        << "rows before the outage: " << azure.row_count();
    const std::string knobs = control(azure, "outage_s=" + std::to_string(outage_s));
    ASSERT_NE(knobs.find("outage_remaining_ms"), std::string::npos) << knobs;
    ASSERT_TRUE(wait_until(std::chrono::seconds(20), [&] { return cefd.metric("cefd_send_server_errors_total") >= 1; }))
        << "the outage was not seen by cefd: " << azure.stats();
    const int code = loadgen.wait(std::chrono::seconds(load_s + outage_s + 120));
    const LoadResult r = parse_load_result(loadgen.out());
    ASSERT_NE(code, -1) << "loadgen did not finish; stderr: " << loadgen.err();
    EXPECT_GT(r.sent, 0U) << r.raw;
    EXPECT_EQ(r.lost, 0U) << r.raw << "\n" << azure.stats();
    EXPECT_EQ(r.delivered, r.sent) << r.raw;
    EXPECT_EQ(code, 0) << r.raw;
    EXPECT_GE(stats_value(azure, "/faults/outage"), 1U) << azure.stats();
    expect_batches_within_one_mib(azure, cefd);
    EXPECT_EQ(cefd.stop(), 0) << cefd.process().err();
}

TEST(Delivery, TwentySecondOutageDuringTcpLoadLosesNothing) { outage_during_tcp_load(10, 2, 20); }

TEST(Delivery, TwoMinuteLoadWithATwentySecondOutageLosesNothing) {
    const char* long_tests = std::getenv("CEFD_LONG_TESTS");
    if (long_tests == nullptr || std::string(long_tests) != "1")
        GTEST_SKIP() << "a 2-minute run: set CEFD_LONG_TESTS=1 to include it";
    outage_during_tcp_load(120, 50, 20);
}

TEST(Delivery, ResetAfterCommitMakesCountedDuplicatesNeverLosses) {
    TempDir dir;
    // Every 3rd accepted request is stored, then its connection is reset before the 204.
    AzureStandin azure(dir, {"--fault-drop-every", "3"});
    Cefd cefd(dir, azure);
    const LoadResult r = run_loadgen(dir, cefd, azure, "reset", {"--rate", "4000", "--duration", "5", "--wait-s", "15"}, 60s);
    EXPECT_EQ(r.lost, 0U) << r.raw;
    EXPECT_EQ(r.delivered, r.sent) << r.raw;
    EXPECT_GE(stats_value(azure, "/faults/drop"), 1U) << azure.stats();
    EXPECT_GT(r.duplicated, 0U) << "a stored-then-reset batch is resent: " << r.raw;
    // Each duplicate comes from a counted re-send.
    EXPECT_GE(cefd.metric("cefd_send_retries_total"), static_cast<double>(stats_value(azure, "/faults/drop")));
    EXPECT_GE(cefd.metric("cefd_send_network_errors_total"), 1);
    expect_batches_within_one_mib(azure, cefd);
    EXPECT_EQ(cefd.stop(), 0) << cefd.process().err();
}

TEST(Delivery, PermanentForbiddenDcrGoesToDeadLetterWithItsReason) {
    TempDir dir;
    AzureStandin azure(dir, {"--forbid-dcr", dcr});
    Cefd cefd(dir, azure, {.azure_extra = "forbidden_retry_window_ms = 0"});  // 0: dead-letter at the first 403
    const LoadResult r = run_loadgen(dir, cefd, azure, "forbid", {"--count", "2000", "--wait-s", "3"}, 60s);
    EXPECT_EQ(r.delivered, 0U) << r.raw;
    ASSERT_TRUE(wait_until(20s, [&] { return cefd.metric("cefd_send_dead_lettered_rows_total") >= 2000; }))
        << "dead-lettered rows: " << cefd.metric("cefd_send_dead_lettered_rows_total") << "\n" << azure.stats();
    EXPECT_GE(cefd.metric("cefd_send_dead_lettered_batches_total"), 1);
    EXPECT_EQ(cefd.metric("cefd_send_retries_total"), 0) << "a 403 is never retried unchanged";
    std::size_t letters = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir.file("dead-letter"))) {
        if (!entry.path().string().ends_with(".meta.json")) continue;
        ++letters;
        const std::string meta = read_file(entry.path());
        EXPECT_NE(meta.find("\"status\":403"), std::string::npos) << meta;
        EXPECT_NE(meta.find("OperationFailed"), std::string::npos) << meta;
        EXPECT_NE(meta.find(dcr), std::string::npos) << meta;
    }
    EXPECT_EQ(static_cast<double>(letters), cefd.metric("cefd_send_dead_lettered_batches_total"));
    EXPECT_EQ(stats_value(azure, "/rejected/forbidden_dcr"), letters) << azure.stats();
    EXPECT_EQ(cefd.stop(), 0) << cefd.process().err();
}

TEST(Delivery, AFlatOutBurstFillsBatchesButNoneExceedsOneMib) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure);
    const LoadResult r = run_loadgen(dir, cefd, azure, "burst", {"--count", "60000", "--wait-s", "15"}, 90s);
    EXPECT_EQ(r.lost, 0U) << r.raw;
    EXPECT_EQ(r.duplicated, 0U) << r.raw;
    // ~1 KB rows: 60,000 of them need dozens of full batches.
    EXPECT_GE(stats_value(azure, "/accepted_requests"), 20U) << azure.stats();
    expect_batches_within_one_mib(azure, cefd);
    EXPECT_EQ(cefd.stop(), 0) << cefd.process().err();
}

}  // namespace
}  // namespace cefd::test
