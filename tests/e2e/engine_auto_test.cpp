// receive.engine: the start-up line names the engine each lane runs and why, and
// cefd_receive_engine_info on /metrics names the engine each lane does run. "auto" measures both
// engines at start and picks the cheaper per datagram (stages/receive/engine_choice.h);
// "io_uring" and "recvmmsg" force that engine.
#include <gtest/gtest.h>
#include <signal.h>

#include <string>

#include "tests/e2e/harness.h"

namespace cefd::test {
namespace {

/// A config that `run` accepts without Azure (auth none, a dead endpoint), with `engine`; it
/// waits 0.2 s, not 10, for that endpoint when stopped.
std::string engine_config(const TempDir& dir, int port, const std::string& engine, int metrics_port) {
    return "[runtime]\nworkers = 2\n[receive]\nudp_port = " + std::to_string(port) +
           "\ntcp_port = " + std::to_string(port) + "\nengine = \"" + engine + "\"\n[spool]\ndir = \"" +
           dir.file("spool") +
           "\"\n[azure]\nauth = \"none\"\nendpoint = \"https://127.0.0.1:1\"\n"
           "dcr_id = \"dcr-00000000000000000000000000000000\"\ndrain_timeout_ms = 200\ndead_letter_dir = \"" +
           dir.file("dl") + "\"\n[metrics]\nlog_interval_s = 0\nlisten = \"127.0.0.1:" + std::to_string(metrics_port) +
           "\"\n";
}

/// Starts cefd with `engine`; returns its stderr once it is running (or has exited), and the
/// /metrics page it served while running in `metrics` (if given).
std::string start_up_log(const TempDir& dir, const std::string& engine, int* exit_code,
                         std::string* metrics = nullptr) {
    const int port = free_port();
    const int metrics_port = free_port();
    write_file(dir.file("cefd.toml"), engine_config(dir, port, engine, metrics_port));
    static int starts = 0;  // each start its own log file in `dir`
    Process cefd({cefd_binary(), "run", "--config", dir.file("cefd.toml")}, dir.path(),
                 "cefd-" + std::to_string(++starts));
    const bool up = wait_until(std::chrono::seconds(20), [&] {
        return cefd.err().find("running") != std::string::npos || !cefd.running();
    });
    EXPECT_TRUE(up) << cefd.err();
    if (cefd.running()) {
        // It takes datagrams with the engine it named.
        send_udp(port, {"CEF:0|Vendor|Product|1|100|engine test|3|src=10.0.0.1"});
        if (metrics != nullptr) *metrics = http_get(metrics_port, "/metrics");
        *exit_code = cefd.stop(SIGTERM);
    } else {
        *exit_code = cefd.wait(std::chrono::seconds(5));
    }
    return cefd.err();
}

std::string start_up_log(const std::string& engine, int* exit_code, std::string* metrics = nullptr) {
    TempDir dir;
    return start_up_log(dir, engine, exit_code, metrics);
}

int count(const std::string& text, const std::string& what) {
    int n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

/// The engine label of lane `lane` in cefd_receive_engine_info, "" if absent.
std::string engine_in_metrics(const std::string& metrics, int lane) {
    const std::string key = "cefd_receive_engine_info{lane=\"" + std::to_string(lane) + "\",engine=\"";
    const std::size_t at = metrics.find(key);
    if (at == std::string::npos) return "";
    const std::size_t start = at + key.size();
    return metrics.substr(start, metrics.find('"', start) - start);
}

// Issue 12: the engine "auto" selects is the one the start-up line names, and the lanes run it.
TEST(EngineAuto, AutoNamesTheEngineItMeasuredAndRuns) {
    int code = -1;
    std::string metrics;
    const std::string err = start_up_log("auto", &code, &metrics);
    EXPECT_EQ(code, 0) << err;
    const std::string key = "receive engine: ";
    const std::size_t at = err.find(key);
    ASSERT_NE(at, std::string::npos) << err;
    EXPECT_EQ(count(err, key), 1) << err;
    const std::string named = err.substr(at + key.size(), err.find(' ', at + key.size()) - at - key.size());
    ASSERT_TRUE(named == "io_uring" || named == "recvmmsg") << err;
    EXPECT_EQ(count(err, key + named + " (auto: "), 1) << err;
    // The line says why: both measured figures, or why io_uring could not be measured.
    EXPECT_TRUE(count(err, " vs recvmmsg ") == 1 || count(err, "io_uring unusable here") == 1) << err;
    // Every lane runs the named engine.
    EXPECT_EQ(engine_in_metrics(metrics, 0), named) << metrics;
    EXPECT_EQ(engine_in_metrics(metrics, 1), named) << metrics;
}

/// The engine a start-up line names ("" if none).
std::string named_engine(const std::string& err) {
    const std::string key = "receive engine: ";
    const std::size_t at = err.find(key);
    if (at == std::string::npos) return "";
    return err.substr(at + key.size(), err.find(' ', at + key.size()) - at - key.size());
}

// A restart reuses the engine measured at the first start (the spool directory's RECEIVE-ENGINE),
// and the spool leaves that file alone (it moved any other stray file to corrupt/).
TEST(EngineAuto, ARestartRunsTheEngineMeasuredBeforeWithoutMeasuring) {
    TempDir dir;
    int code = -1;
    const std::string first = start_up_log(dir, "auto", &code);
    EXPECT_EQ(code, 0) << first;
    if (first.find("io_uring unusable here") != std::string::npos) GTEST_SKIP() << "nothing is measured here";
    EXPECT_EQ(count(first, "(auto: measured in "), 1) << first;
    EXPECT_EQ(count(first, "remembered in " + dir.file("spool") + "/RECEIVE-ENGINE"), 1) << first;

    std::string metrics;
    const std::string second = start_up_log(dir, "auto", &code, &metrics);
    EXPECT_EQ(code, 0) << second;
    EXPECT_EQ(count(second, "(auto: measured in "), 0) << second;
    EXPECT_EQ(count(second, "on this kernel and CPU, remembered in " + dir.file("spool") + "/RECEIVE-ENGINE"), 1)
        << second;
    EXPECT_EQ(named_engine(second), named_engine(first)) << second;
    EXPECT_EQ(engine_in_metrics(metrics, 0), named_engine(first)) << metrics;
    EXPECT_NE(metrics.find("\ncefd_spool_unknown_files_total 0\n"), std::string::npos) << metrics;
}

TEST(EngineAuto, ForcedRecvmmsgNamesRecvmmsg) {
    int code = -1;
    const std::string err = start_up_log("recvmmsg", &code);
    EXPECT_EQ(code, 0) << err;
    EXPECT_EQ(count(err, "receive engine: recvmmsg (configured)"), 1) << err;
    // Forced: nothing is measured at start.
    EXPECT_EQ(count(err, "measured in"), 0) << err;
}

TEST(EngineAuto, ForcedIoUringNamesIoUringOrSaysWhyNot) {
    int code = -1;
    const std::string err = start_up_log("io_uring", &code);
    if (err.find("io_uring is unusable here") != std::string::npos) {
        // A sandbox without io_uring: forcing it must fail to start, not fall back silently.
        EXPECT_NE(code, 0) << err;
        EXPECT_EQ(count(err, "receive engine:"), 0) << err;
        return;
    }
    EXPECT_EQ(code, 0) << err;
    EXPECT_EQ(count(err, "receive engine: io_uring (configured)"), 1) << err;
    EXPECT_EQ(count(err, "receive engine: recvmmsg"), 0) << err;
}

}  // namespace
}  // namespace cefd::test
