// receive.engine = "auto": the rule that picks an engine from measured costs, and the
// calibration that measures them on a private loopback socket (real engines, real datagrams).
#include "stages/receive/engine_choice.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "engine/queue/byte_ring.h"
#include "engine/unique_fd.h"
#include "stages/receive/engine.h"
#include "tests/support/support.h"

namespace cefd::receive {
namespace {

using Engine = ReceiveConfig::Engine;

TEST(DecideEngine, IoUringOnlyWhenTenPercentCheaperInEveryRound) {
    const std::vector<double> recvmmsg{1.00, 1.00};
    EXPECT_EQ(decide_engine(std::vector<double>{0.80, 0.85}, recvmmsg).engine, Engine::io_uring);
    EXPECT_EQ(decide_engine(std::vector<double>{0.909, 0.90}, recvmmsg).engine, Engine::io_uring);
    // One round where io_uring is only 5% cheaper: recvmmsg.
    EXPECT_EQ(decide_engine(std::vector<double>{0.80, 0.95}, recvmmsg).engine, Engine::recvmmsg);
    // A tie, or io_uring dearer: recvmmsg.
    EXPECT_EQ(decide_engine(recvmmsg, recvmmsg).engine, Engine::recvmmsg);
    EXPECT_EQ(decide_engine(std::vector<double>{1.5, 1.6}, recvmmsg).engine, Engine::recvmmsg);
}

TEST(DecideEngine, NothingMeasuredOrZeroCostIsRecvmmsg) {
    EXPECT_EQ(decide_engine({}, {}).engine, Engine::recvmmsg);
    // A round where io_uring wrote nothing costs 0: not a win.
    EXPECT_EQ(decide_engine(std::vector<double>{0.0, 0.0}, std::vector<double>{1.0, 1.0}).engine, Engine::recvmmsg);
}

TEST(DecideEngine, WhyGivesBothFiguresAndTheVerdict) {
    const EngineChoice uring = decide_engine(std::vector<double>{0.61, 0.64}, std::vector<double>{0.80, 0.82});
    EXPECT_NE(uring.why.find("io_uring 0.61/0.64 vs recvmmsg 0.80/0.82 CPU-us per datagram"), std::string::npos)
        << uring.why;
    EXPECT_NE(uring.why.find("10% or more cheaper"), std::string::npos) << uring.why;
    const EngineChoice mmsg = decide_engine(std::vector<double>{0.90}, std::vector<double>{0.80});
    EXPECT_NE(mmsg.why.find("not 10% cheaper"), std::string::npos) << mmsg.why;
}

class MeasureEngine : public ::testing::TestWithParam<Engine> {};

// Each engine takes the datagrams sent to it on its own port: the configured port, held here by
// another socket, is not touched.
TEST_P(MeasureEngine, CountsWhatItReceivesAndItsCpu) {
    if (GetParam() == Engine::io_uring && !probe_uring().ok()) GTEST_SKIP() << probe_uring().error().message;
    UniqueFd held(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    ASSERT_EQ(::bind(held.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(::getsockname(held.get(), reinterpret_cast<sockaddr*>(&address), &length), 0);
    ReceiveConfig config;
    config.udp_port = ntohs(address.sin_port);

    auto cost = measure_engine(GetParam(), config, 1'024);
    ASSERT_TRUE(cost.ok()) << cost.error().describe();
    EXPECT_EQ(cost.value().sent, 1'024u);
    EXPECT_GT(cost.value().written, 0u);
    EXPECT_LE(cost.value().written, cost.value().sent);
    EXPECT_GT(cost.value().cpu_ns, 0);
    EXPECT_GT(cost.value().us_per_datagram(), 0.0);
    // Nothing arrived on the configured port.
    char byte = 0;
    EXPECT_LT(::recv(held.get(), &byte, 1, MSG_DONTWAIT), 0);
}

INSTANTIATE_TEST_SUITE_P(Engines, MeasureEngine, ::testing::Values(Engine::io_uring, Engine::recvmmsg),
                         [](const auto& info) { return info.param == Engine::io_uring ? "io_uring" : "recvmmsg"; });

// A calibration round on a socket too small for its rate loses datagrams. They are counted in
// its cost, and nothing is logged about them: before, the engine ran as "lane 0", so its drops
// were logged as lane 0's kernel drops (with a metric total that was not the metric's) and used
// up that call site's once-per-10-s allowance, hiding the first real drop of lane 0.
TEST(Calibration, DropsAreCountedAndNeitherLoggedAsALaneNorHidingALanesWarning) {
    ReceiveConfig config;
    config.rcvbuf_bytes = 4'096;  // the kernel's floor: two or three datagrams of 850 bytes
    for (const Engine engine : {Engine::io_uring, Engine::recvmmsg}) {
        if (engine == Engine::io_uring && !probe_uring().ok()) continue;
        SCOPED_TRACE(engine == Engine::io_uring ? "io_uring" : "recvmmsg");
        testing::internal::CaptureStderr();
        auto cost = measure_engine(engine, config, 4'096, 100'000'000);  // batches of 32, unpaced
        const std::string calibration_log = testing::internal::GetCapturedStderr();
        ASSERT_TRUE(cost.ok()) << cost.error().describe();
        EXPECT_GT(cost.value().lost, 0u) << "sent " << cost.value().sent << ", written " << cost.value().written;
        EXPECT_LE(cost.value().written + cost.value().lost, cost.value().sent);
        EXPECT_EQ(calibration_log.find("lane"), std::string::npos) << calibration_log;
        EXPECT_EQ(calibration_log.find("dropped"), std::string::npos) << calibration_log;
    }

    // A real lane's first kernel drop right after is still logged, and names the lane. (Once per
    // process: the call site logs at most once per 10 s.)
    ByteRing ring(1 << 20);
    ReceiveStats stats;
    std::atomic<bool> reload{false};
    Intake lane(ReceiveConfig{}, 0, 2, ring, stats, reload);
    UdpBatch batch;
    batch.kernel_drops = 7;
    testing::internal::CaptureStderr();
    lane.flush(batch, -1);
    const std::string lane_log = testing::internal::GetCapturedStderr();
    EXPECT_NE(lane_log.find("receive: lane 0 kernel dropped UDP datagrams"), std::string::npos) << lane_log;
    EXPECT_EQ(read(stats.kernel_drops), 7u);
}

// The kernel's drop count of a socket is 32 bits. The counter followed the largest total seen,
// so once the kernel's count wrapped it stood still for good. It adds the growth now. Found in
// review.
TEST(IntakeKernelDrops, KeepCountingWhenTheKernelsCountWraps) {
    ByteRing ring(1 << 20);
    ReceiveStats stats;
    std::atomic<bool> reload{false};
    Intake lane(ReceiveConfig{}, 0, 2, ring, stats, reload);
    testing::internal::CaptureStderr();
    UdpBatch batch;
    batch.kernel_drops = 0xFFFF'FFF0u;
    lane.flush(batch, -1);
    EXPECT_EQ(read(stats.kernel_drops), 0xFFFF'FFF0u);
    batch.kernel_drops = 0xFFFF'FFF0u;  // read again, unchanged: nothing added
    lane.flush(batch, -1);
    EXPECT_EQ(read(stats.kernel_drops), 0xFFFF'FFF0u);
    batch.kernel_drops = 0x10;  // 32 more: the kernel's count went past 2^32
    lane.flush(batch, -1);
    (void)testing::internal::GetCapturedStderr();
    EXPECT_EQ(read(stats.kernel_drops), 0xFFFF'FFF0ull + 0x20);
}

// The start-up line says when the calibration's own socket lost datagrams (a buffer too small).
TEST(ChooseAutomaticEngine, SaysWhenTheCalibrationLostDatagrams) {
    if (!probe_uring().ok()) GTEST_SKIP() << "io_uring unusable: nothing is measured";
    ReceiveConfig small;
    small.rcvbuf_bytes = 4'096;
    const EngineChoice choice = choose_automatic_engine(small, "");
    EXPECT_NE(choice.why.find("the calibration's socket lost "), std::string::npos) << choice.why;
    EXPECT_NE(choice.why.find("receive.rcvbuf_bytes"), std::string::npos) << choice.why;
}

// A restart on the same machine reads the engine measured before instead of measuring again.
TEST(ChooseAutomaticEngine, RemembersTheMeasurementAndReusesItWhileTheKeyMatches) {
    if (!probe_uring().ok()) GTEST_SKIP() << "io_uring unusable: nothing is measured";
    test::TempDir dir;
    const std::string state = dir.file("RECEIVE-ENGINE");
    const EngineChoice measured = choose_automatic_engine(ReceiveConfig{}, state);
    EXPECT_NE(measured.why.find("measured in "), std::string::npos) << measured.why;
    EXPECT_NE(measured.why.find("remembered in " + state), std::string::npos) << measured.why;
    const std::string written = test::read_file(state);
    const std::string name = measured.engine == Engine::io_uring ? "io_uring" : "recvmmsg";
    EXPECT_NE(written.find("\nengine=" + name + "\n"), std::string::npos) << written;

    // The file decides: make it name the other engine, and the next choice follows it.
    const std::string other = name == "io_uring" ? "recvmmsg" : "io_uring";
    std::string edited = written;
    edited.replace(edited.find("\nengine=" + name), name.size() + 8, "\nengine=" + other);
    test::write_file(state, edited, 0644);
    const EngineChoice remembered = choose_automatic_engine(ReceiveConfig{}, state);
    EXPECT_EQ(remembered.engine, name == "io_uring" ? Engine::recvmmsg : Engine::io_uring) << remembered.why;
    EXPECT_NE(remembered.why.find("remembered in " + state), std::string::npos) << remembered.why;
    EXPECT_NE(remembered.why.find(" vs recvmmsg "), std::string::npos) << remembered.why;
    EXPECT_EQ(remembered.why.find("measured in "), std::string::npos) << remembered.why;

    // Other buffer settings: a different key, so it measures again and rewrites the file.
    ReceiveConfig fewer_buffers;
    fewer_buffers.buffers_per_core = 64;
    const EngineChoice again = choose_automatic_engine(fewer_buffers, state);
    EXPECT_NE(again.why.find("measured in "), std::string::npos) << again.why;
    EXPECT_NE(test::read_file(state).find("buffers_per_core 64"), std::string::npos);
}

TEST(ChooseAutomaticEngine, AGarbledFileIsMeasuredAgainAndAnUnwritableOneIsNotFatal) {
    if (!probe_uring().ok()) GTEST_SKIP() << "io_uring unusable: nothing is measured";
    test::TempDir dir;
    const std::string state = dir.file("RECEIVE-ENGINE");
    test::write_file(state, std::string("key=\xff\x00garbage\nengine=fastest\n", 30), 0644);
    const EngineChoice choice = choose_automatic_engine(ReceiveConfig{}, state);
    EXPECT_NE(choice.why.find("measured in "), std::string::npos) << choice.why;
    EXPECT_NE(test::read_file(state).find("\nmeasured="), std::string::npos);

    const EngineChoice nowhere = choose_automatic_engine(ReceiveConfig{}, dir.file("missing/RECEIVE-ENGINE"));
    EXPECT_NE(nowhere.why.find("measured in "), std::string::npos) << nowhere.why;
}

TEST(AutomaticEngine, MeasuresOnceAndSaysWhy) {
    const EngineChoice& first = automatic_engine(ReceiveConfig{});
    const EngineChoice& second = automatic_engine(ReceiveConfig{});
    EXPECT_EQ(&first, &second);
    EXPECT_TRUE(first.why.starts_with("auto: ")) << first.why;
    if (!probe_uring().ok()) {
        EXPECT_EQ(first.engine, Engine::recvmmsg);
        EXPECT_NE(first.why.find("io_uring unusable here"), std::string::npos) << first.why;
    } else {
        EXPECT_NE(first.why.find("measured in "), std::string::npos) << first.why;
        EXPECT_NE(first.why.find(" vs recvmmsg "), std::string::npos) << first.why;
    }
}

}  // namespace
}  // namespace cefd::receive
