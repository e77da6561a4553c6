// receive.engine: the start-up line names the engine each lane runs and why. "auto" picks
// recvmmsg (never much costlier per UDP datagram than io_uring on the machines measured:
// bench/README.md, "Receive engines"); "io_uring" and "recvmmsg" force that engine.
#include <gtest/gtest.h>
#include <signal.h>

#include <string>

#include "tests/e2e/harness.h"

namespace cefd::test {
namespace {

/// A config that `run` accepts without Azure (auth none, a dead endpoint), with `engine`.
std::string engine_config(const TempDir& dir, int port, const std::string& engine) {
    return "[receive]\nudp_port = " + std::to_string(port) + "\ntcp_port = " + std::to_string(port) +
           "\nengine = \"" + engine + "\"\n[spool]\ndir = \"" + dir.file("spool") +
           "\"\n[azure]\nauth = \"none\"\nendpoint = \"https://127.0.0.1:1\"\n"
           "dcr_id = \"dcr-00000000000000000000000000000000\"\ndead_letter_dir = \"" + dir.file("dl") +
           "\"\n[metrics]\nlog_interval_s = 0\nlisten = \"\"\n";
}

/// Starts cefd with `engine`; returns its stderr once it is running (or has exited).
std::string start_up_log(const std::string& engine, int* exit_code) {
    TempDir dir;
    const int port = free_port();
    write_file(dir.file("cefd.toml"), engine_config(dir, port, engine));
    Process cefd({cefd_binary(), "run", "--config", dir.file("cefd.toml")}, dir.path(), "cefd");
    const bool up = wait_until(std::chrono::seconds(20), [&] {
        return cefd.err().find("running") != std::string::npos || !cefd.running();
    });
    EXPECT_TRUE(up) << cefd.err();
    if (cefd.running()) {
        // It takes datagrams with the engine it named.
        send_udp(port, {"CEF:0|Vendor|Product|1|100|engine test|3|src=10.0.0.1"});
        *exit_code = cefd.stop(SIGTERM);
    } else {
        *exit_code = cefd.wait(std::chrono::seconds(5));
    }
    return cefd.err();
}

int count(const std::string& text, const std::string& what) {
    int n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

TEST(EngineAuto, AutoNamesRecvmmsgAndWhy) {
    int code = -1;
    const std::string err = start_up_log("auto", &code);
    EXPECT_EQ(code, 0) << err;
    EXPECT_EQ(count(err, "receive engine: recvmmsg (auto: "), 1) << err;
    EXPECT_EQ(count(err, "receive engine: io_uring"), 0) << err;
}

TEST(EngineAuto, ForcedRecvmmsgNamesRecvmmsg) {
    int code = -1;
    const std::string err = start_up_log("recvmmsg", &code);
    EXPECT_EQ(code, 0) << err;
    EXPECT_EQ(count(err, "receive engine: recvmmsg (configured)"), 1) << err;
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
