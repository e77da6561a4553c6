// `cefd replay-dead-letter` end to end: a DCR answers 403 (the role grant is missing), cefd
// dead-letters the batches; the grant is fixed (a stand-in without the fault); the replay puts
// the dead letters back into the spool, refusing while a cefd holds that spool, and a second
// replay sends nothing; the next `cefd run` delivers every row exactly once.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "tests/e2e/harness.h"

namespace cefd::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* dcr = "dcr-00000000000000000000000000000000";  // the harness's DCR

std::vector<std::string> stamped_lines(const std::string& run, int count) {
    std::vector<std::string> lines;
    for (int i = 0; i < count; ++i)
        lines.push_back("<134>Mar 14 09:15:02 dt-master-01 CEF:0|Darktrace|Enterprise Immune System|6.1|26|Replay|7|"
                        "dvc=192.0.2.60 e2eseq=" + run + "-" + std::to_string(i) + "-end");
    return lines;
}

/// How often each stamp of `run` arrived at the stand-in.
std::map<std::string, int> arrivals(const AzureStandin& azure, const std::string& run) {
    std::map<std::string, int> seen;
    const std::string key = "e2eseq=" + run + "-";
    for (const auto& line : read_lines(azure.rows_path())) {
        const std::size_t at = line.find(key);
        if (at == std::string::npos) continue;
        const std::size_t end = line.find("-end", at + key.size());
        ++seen[line.substr(at + key.size(), end - at - key.size())];
    }
    return seen;
}

std::size_t files_in(const std::string& dir, const std::string& suffix) {
    std::size_t n = 0;
    std::error_code ignored;
    for (const auto& e : std::filesystem::directory_iterator(dir, ignored))
        n += e.path().string().ends_with(suffix) ? 1 : 0;
    return n;
}

TEST(SendReplayDeadLetter, ForbiddenThenFixedThenReplayedDeliversEveryRowOnce) {
    constexpr int rows = 300;
    TempDir dir;          // cefd: config, spool, dead letters
    TempDir broken_dir;   // the stand-in before the grant
    TempDir fixed_dir;    // and after
    std::string replay_out;
    {
        AzureStandin broken(broken_dir, {"--forbid-dcr", dcr});
        Cefd cefd(dir, broken, {.azure_extra = "forbidden_retry_window_ms = 0"});
        send_tcp(cefd.port(), stamped_lines("replay", rows));
        ASSERT_TRUE(wait_until(30s, [&] { return cefd.metric("cefd_send_dead_lettered_rows_total") >= rows; }))
            << "dead-lettered rows: " << cefd.metric("cefd_send_dead_lettered_rows_total") << "\n" << cefd.process().err();
        EXPECT_EQ(broken.row_count(), 0U);

        // While cefd runs, the replay must refuse: the spool is locked.
        const int busy = run_command(cefd_binary() + " replay-dead-letter --config " + cefd.config_path() + " 2>&1", &replay_out);
        EXPECT_EQ(busy, 2) << replay_out;
        EXPECT_NE(replay_out.find("in use"), std::string::npos) << replay_out;
        const std::string metrics = http_get(cefd.metrics_port(), "/metrics");
        EXPECT_EQ(cefd.stop(), 0) << cefd.process().err();
        // The harness's client secret never reaches a log line, a metric or a dead letter.
        for (const std::string& output : {cefd.process().err(), cefd.process().out(), metrics, replay_out})
            EXPECT_EQ(output.find("cefd-test-secret"), std::string::npos) << output;
    }
    const std::string letters = dir.file("dead-letter");
    const std::size_t dead_letters = files_in(letters, ".json.zst");
    ASSERT_GE(dead_letters, 1U);

    const std::string replay = cefd_binary() + " replay-dead-letter --config " + dir.file("cefd.toml") + " 2>&1";
    ASSERT_EQ(run_command(replay, &replay_out), 0) << replay_out;
    EXPECT_NE(replay_out.find(std::to_string(dead_letters) + " files, " + std::to_string(dead_letters) + " batches (" +
                              std::to_string(rows) + " rows)"),
              std::string::npos)
        << replay_out;
    EXPECT_NE(replay_out.find("0 skipped"), std::string::npos) << replay_out;
    EXPECT_EQ(files_in(letters, ".json.zst"), 0U);
    EXPECT_EQ(files_in(letters + "/replayed", ".json.zst"), dead_letters);
    EXPECT_EQ(files_in(letters + "/replayed", ".meta.json"), dead_letters);
    // Idempotent: the second run finds nothing to send.
    ASSERT_EQ(run_command(replay, &replay_out), 0) << replay_out;
    EXPECT_NE(replay_out.find("0 files, 0 batches (0 rows)"), std::string::npos) << replay_out;

    AzureStandin fixed(fixed_dir);
    Cefd cefd(dir, fixed);  // the same spool, now pointing at the fixed side
    ASSERT_TRUE(wait_until(30s, [&] { return arrivals(fixed, "replay").size() >= rows; }))
        << "distinct rows: " << arrivals(fixed, "replay").size() << "\n" << cefd.process().err();
    EXPECT_EQ(cefd.stop(), 0) << cefd.process().err();
    EXPECT_EQ(cefd.process().err().find("cefd-test-secret"), std::string::npos);
    for (const auto& e : std::filesystem::recursive_directory_iterator(letters)) {
        if (e.path().string().ends_with(".meta.json")) {
            EXPECT_EQ(read_file(e.path()).find("cefd-test-secret"), std::string::npos) << e.path();
        }
    }
    const auto seen = arrivals(fixed, "replay");
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(rows));
    for (const auto& [stamp, times] : seen) EXPECT_EQ(times, 1) << "row " << stamp << " arrived " << times << " times";
    EXPECT_EQ(fixed.row_count(), static_cast<std::size_t>(rows));
}

TEST(SendReplayDeadLetter, DamagedDeadLetterIsSkippedAndCounted) {
    TempDir dir;
    TempDir azure_dir;
    AzureStandin azure(azure_dir);
    std::string config;
    {
        Cefd cefd(dir, azure);
        config = cefd.config_path();
        EXPECT_EQ(cefd.stop(), 0);
    }
    std::filesystem::create_directories(dir.file("dead-letter"));
    write_file(dir.file("dead-letter/20261203T000000Z-x.json.zst"), "not zstd");
    write_file(dir.file("dead-letter/20261203T000000Z-x.meta.json"), "{\"rows\":1,\"json_bytes\":8,\"stream\":\"s\",\"body_is_json\":true}");
    write_file(dir.file("dead-letter/20261203T000001Z-y.json.zst"), "orphan without its metadata");
    std::string out;
    EXPECT_EQ(run_command(cefd_binary() + " replay-dead-letter --config " + config + " 2>&1", &out), 1) << out;
    EXPECT_NE(out.find("2 files, 0 batches (0 rows)"), std::string::npos) << out;
    EXPECT_NE(out.find("2 skipped"), std::string::npos) << out;
    EXPECT_TRUE(std::filesystem::exists(dir.file("dead-letter/20261203T000000Z-x.json.zst"))) << "damaged files stay";
}

}  // namespace
}  // namespace cefd::test
