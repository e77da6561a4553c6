// `cefd-loadgen size` end to end on a short ramp: the real cefd, the stand-in (with its
// --accept-log) and the loadgen. Checks the report exists in all three forms and that the JSON
// verdict agrees with its own trials and arithmetic; nothing about how fast this machine is.
#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <simdjson.h>

#include "tests/e2e/harness.h"

namespace {

using namespace std::chrono_literals;
using cefd::test::AzureStandin;
using cefd::test::Cefd;
using cefd::test::Process;
using cefd::test::TempDir;

std::string loadgen() { return cefd::test::binary_path("tools/loadgen/cefd-loadgen"); }

TEST(SizingReport, ShortRampGivesAVerdictConsistentWithItsTrials) {
    TempDir dir;
    AzureStandin azure(dir, {"--accept-log", dir.file("rows.jsonl.accept")});
    Cefd cefd(dir, azure);
    const std::string out = dir.file("report");
    Process size({loadgen(), "size", "--target", "127.0.0.1:" + std::to_string(cefd.port()), "--metrics",
                  "http://127.0.0.1:" + std::to_string(cefd.metrics_port()) + "/metrics", "--verify",
                  azure.rows_path(), "--out", out, "--hold-s", "1", "--start-rate", "500", "--max-rate", "2000",
                  "--peak-eps", "50000", "--headroom", "0.3", "--max-p99-ms", "5000", "--drain-s", "10"},
                 dir.path(), "size");
    ASSERT_EQ(size.wait(300s), 0) << size.out() << size.err();

    const std::string json = cefd::test::read_file(out + "/report.json");
    simdjson::dom::parser parser;
    simdjson::dom::element report;
    ASSERT_EQ(parser.parse(json).get(report), simdjson::SUCCESS) << json;
    const double verdict = report["max_zero_loss_eps"].get_double().value();
    const double cpu = report["cpu_us_per_event"].get_double().value();
    const double p99 = report["p99_ms"].get_double().value();
    const std::int64_t collectors = report["collectors_needed"].get_int64().value();
    const std::int64_t dcrs = report["dcrs_needed"].get_int64().value();

    // The verdict comes from the highest target among the trials that held for the full --hold-s, and
    // its CPU and p99 figures are that trial's.
    double best = 0;
    double best_offered = 0;
    double best_cpu = 0;
    double best_p99 = 0;
    int trials = 0;
    for (simdjson::dom::element trial : report["trials"].get_array()) {
        ++trials;
        const double target = trial["target_eps"].get_double().value();
        EXPECT_GE(trial["p50_ms"].get_double().value(), 0);
        EXPECT_LE(trial["p50_ms"].get_double().value(), trial["p99_ms"].get_double().value());
        EXPECT_LE(trial["p99_ms"].get_double().value(), trial["max_ms"].get_double().value());
        // The generator check of the run report (check_generator), per trial: a generator-limited
        // trial never holds, and the rate it asked for is the trial's.
        const bool limited = trial["generator_limited"].get_bool().value();
        const std::string_view limited_why = trial["generator_limited_why"].get_string().value();
        EXPECT_EQ(limited, !limited_why.empty()) << json;
        if (limited) {
            EXPECT_FALSE(trial["held"].get_bool().value()) << json;
        }
        EXPECT_NEAR(trial["requested_eps"].get_double().value(), target, 0.02 * target) << json;
        EXPECT_GE(trial["sender_cpu_share"].get_double().value(), 0);
        EXPECT_FALSE(trial["target_backpressure"].get_bool().value()) << json;  // UDP never pushes back
        if (trial["held"].get_bool().value() && trial["hold_s"].get_double().value() >= 1 && target > best) {
            best = target;
            best_offered = trial["offered_eps"].get_double().value();
            best_cpu = trial["cefd_cpu_us_per_event"].get_double().value();
            best_p99 = trial["p99_ms"].get_double().value();
        }
    }
    EXPECT_GE(trials, 2);
    // ... and the rate that trial offered when the generator fell a little short of it (a trial
    // holds at 97 % of its target); the report rounds it to whole events/s.
    EXPECT_NEAR(verdict, best > 0 ? std::min(best, best_offered) : 0, 0.5) << json;
    // The verdict's own generator fields: why is filled exactly when the generator was the limit.
    const bool generator_limited = report["generator_limited"].get_bool().value();
    EXPECT_EQ(generator_limited, !report["why"].get_string().value().empty()) << json;
    EXPECT_EQ(generator_limited, report["generator_limited_eps"].get_double().value() > 0) << json;
    EXPECT_DOUBLE_EQ(cpu, best_cpu) << json;
    EXPECT_DOUBLE_EQ(p99, best_p99) << json;
    if (verdict > 0) {
        EXPECT_EQ(collectors, static_cast<std::int64_t>(std::ceil(50000 / (verdict * 0.7) - 1e-9))) << json;
        EXPECT_GE(dcrs, 1);
        EXPECT_EQ(dcrs, std::max({std::int64_t{1}, report["dcrs_by_bytes"].get_int64().value(),
                                  report["dcrs_by_requests"].get_int64().value()}));
    }

    // The tables say the same.
    const std::string markdown = cefd::test::read_file(out + "/report.md");
    char verdict_text[64];
    std::snprintf(verdict_text, sizeof verdict_text, "**%.0f events/s", verdict);
    if (verdict > 0) {
        EXPECT_NE(markdown.find(verdict_text), std::string::npos) << markdown;
        EXPECT_NE(markdown.find("| **" + std::to_string(collectors) + "** |"), std::string::npos) << markdown;
        EXPECT_NE(markdown.find("| **" + std::to_string(dcrs) + "** |"), std::string::npos) << markdown;
    }
    EXPECT_NE(markdown.find("section 1.5"), std::string::npos);
    EXPECT_NE(markdown.find("| sender CPU | generator |"), std::string::npos) << markdown;
    EXPECT_EQ(markdown.find("The generator, not cefd, was the limit") != std::string::npos, generator_limited)
        << markdown;
    const std::string svg = cefd::test::read_file(out + "/sizing.svg");
    EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u) << svg.substr(0, 200);
    EXPECT_NE(svg.find("<polyline"), std::string::npos);
    EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

TEST(SizingReport, PerCoreScalingRestartsCefdWithEachLaneCount) {
    TempDir dir;
    AzureStandin azure(dir, {"--accept-log", dir.file("rows.jsonl.accept")});
    std::string config;
    int port = 0;
    int metrics_port = 0;
    {
        Cefd cefd(dir, azure);  // only for its config; size starts its own cefd per lane count
        config = cefd.config_path();
        port = cefd.port();
        metrics_port = cefd.metrics_port();
        ASSERT_EQ(cefd.stop(), 0);
    }
    const std::string out = dir.file("report");
    Process size({loadgen(), "size", "--target", "127.0.0.1:" + std::to_string(port), "--metrics",
                  "http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics", "--verify", azure.rows_path(),
                  "--out", out, "--hold-s", "1", "--start-rate", "500", "--max-rate", "1000", "--drain-s", "10",
                  "--cefd", cefd::test::cefd_binary(), "--config", config, "--lanes", "1,2"},
                 dir.path(), "size");
    ASSERT_EQ(size.wait(300s), 0) << size.out() << size.err();
    const std::string json = cefd::test::read_file(out + "/report.json");
    simdjson::dom::parser parser;
    simdjson::dom::element report;
    ASSERT_EQ(parser.parse(json).get(report), simdjson::SUCCESS) << json;
    std::vector<std::int64_t> lanes;
    for (simdjson::dom::element row : report["scaling"].get_array()) lanes.push_back(row["lanes"].get_int64().value());
    EXPECT_EQ(lanes, (std::vector<std::int64_t>{1, 2})) << json;
    EXPECT_EQ(report["lanes"].get_double().value(), 2) << json;  // the last cefd had 2 lanes
    EXPECT_NE(cefd::test::read_file(out + "/cefd-lanes-1.toml").find("workers = 1"), std::string::npos);
    EXPECT_NE(cefd::test::read_file(out + "/report.md").find("## Per-core scaling"), std::string::npos);
}

TEST(SizingReport, BadFlagsAreAUsageErrorWithExit2) {
    TempDir dir;
    const auto run = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {loadgen(), "size"});
        Process process(args, dir.path(), "size");
        return process.wait(30s);
    };
    EXPECT_EQ(run({"--target", "127.0.0.1:1"}), 2);  // no --metrics, --verify, --out
    EXPECT_EQ(run({"--target", "127.0.0.1:1", "--metrics", "http://127.0.0.1:1/metrics", "--verify", "r", "--out",
                   dir.file("o"), "--headroom", "2"}),
              2);
    EXPECT_EQ(run({"--target", "127.0.0.1:1", "--metrics", "ftp://x", "--verify", "r", "--out", dir.file("o")}), 2);
    EXPECT_EQ(run({"--frobnicate", "1"}), 2);
    EXPECT_EQ(run({"--proto", "sctp"}), 2);
    EXPECT_EQ(run({"--target", "127.0.0.1:1", "--metrics", "http://127.0.0.1:1/metrics", "--verify", "r", "--out",
                   dir.file("o"), "--lanes", "1,2"}),
              2);  // --lanes needs --cefd and --config
    EXPECT_EQ(run({"--target", "127.0.0.1:1", "--metrics", "http://127.0.0.1:1/metrics", "--verify", "r", "--out",
                   dir.file("o"), "--cefd", "x", "--config", "y", "--lanes", "1,zero"}),
              2);
}

}  // namespace
