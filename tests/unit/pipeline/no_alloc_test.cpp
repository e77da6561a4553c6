// Nothing between the socket and the batch writer allocates per message: the real Pipeline runs
// in this process, and a replaced global operator new counts allocations per thread. The lane
// threads are found by name (cefd-recv-N, cefd-work-N); the sender and metrics threads are free to
// allocate (they work per batch, not per message).
#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <new>
#include <string>

#include <gtest/gtest.h>

#include "engine/pipeline/config.h"
#include "engine/pipeline/pipeline.h"
#include "tests/support/counting_new.h"
#include "tests/support/support.h"

namespace {

constexpr std::size_t slots = 1 << 16;
std::atomic<std::uint64_t> allocations_by_tid[slots];

void count_allocation() noexcept {
    static thread_local const auto tid = static_cast<std::size_t>(::syscall(SYS_gettid));
    allocations_by_tid[tid % slots].fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

void cefd_test_on_allocation() noexcept { count_allocation(); }

namespace cefd {
namespace {

/// Allocations so far by the threads whose name starts with cefd-recv- or cefd-work-.
std::map<std::string, std::uint64_t> lane_thread_allocations() {
    std::map<std::string, std::uint64_t> out;
    DIR* dir = ::opendir("/proc/self/task");
    while (dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] == '.') continue;
        std::ifstream comm(std::string("/proc/self/task/") + entry->d_name + "/comm");
        std::string name;
        std::getline(comm, name);
        if (name.rfind("cefd-recv-", 0) == 0 || name.rfind("cefd-work-", 0) == 0)
            out[name] = allocations_by_tid[static_cast<std::size_t>(std::atoll(entry->d_name)) % slots].load();
    }
    ::closedir(dir);
    return out;
}

TEST(Pipeline, LaneThreadsDoNotAllocatePerMessage) {
    test::TempDir dir;
    const int port = test::free_port();
    ConfigErrors errors;
    auto config = load_config_text(
        "[runtime]\nworkers = 2\nring_bytes = 4194304\n"
        "[receive]\nudp_port = " + std::to_string(port) + "\ntcp_port = " + std::to_string(port) + "\n"
        "[batch]\nlinger_ms = 60000\n"  // rows stay in the open batch: sealing allocates the body
        "[dedupe]\nwindow_ms = 10000\n"
        "[spool]\ndir = \"" + dir.file("spool") + "\"\n"
        "[azure]\nauth = \"none\"\nendpoint = \"https://127.0.0.1:1\"\n"
        "dcr_id = \"dcr-00000000000000000000000000000000\"\ndrain_timeout_ms = 100\ndead_letter_dir = \"" + dir.file("dl") + "\"\n"
        "[metrics]\nlisten = \"\"\n",
        "<test>", errors);
    ASSERT_TRUE(config) << (errors.empty() ? "" : errors.list().front());
    auto pipeline = Pipeline::build(*config);
    ASSERT_TRUE(pipeline.ok()) << pipeline.error().describe();
    Pipeline& p = *pipeline.value();
    p.start();

    const auto samples = test::sample_lines(test::source_path("tests/data/synthetic-darktrace-cef.log"));
    auto send = [&](int count, int offset) {
        std::vector<std::string> lines;
        for (int i = 0; i < count; ++i)
            lines.push_back(samples[static_cast<std::size_t>(i) % samples.size()] + " seq=" + std::to_string(offset + i));
        // Small bursts with a pause, so the lane rings never fill on a busy machine.
        for (std::size_t at = 0; at < lines.size(); at += 200) {
            test::send_udp(port, std::vector<std::string>(lines.begin() + static_cast<long>(at),
                                                          lines.begin() + static_cast<long>(std::min(lines.size(), at + 200))));
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    };
    auto taken = [&] { return p.metrics().value("worker_messages_total"); };

    // Warm up: the first messages may touch lazily built state (thread-locals, caches).
    send(2'000, 0);
    ASSERT_TRUE(test::wait_until(std::chrono::seconds(20), [&] { return taken() >= 2'000; })) << taken();
    const auto before = lane_thread_allocations();
    ASSERT_EQ(before.size(), 4U) << "expected two receive and two worker threads";

    send(10'000, 2'000);
    ASSERT_TRUE(test::wait_until(std::chrono::seconds(30), [&] { return taken() >= 12'000; })) << taken();
    const auto after = lane_thread_allocations();
    const double sealed = p.metrics().value("batch_batches_total");
    std::uint64_t allocated = 0;
    for (const auto& [name, count] : after) allocated += count - before.at(name);
    EXPECT_EQ(p.metrics().value("receive_ring_full_total"), 0) << "the test must not overload the rings";
    // Sealing allocates per batch (the body, and the spool's bookkeeping: 4 allocations per batch
    // when this test was written); one allocation per message would be 10,000 or more.
    EXPECT_LE(allocated, static_cast<std::uint64_t>(sealed) * 16)
        << allocated << " allocations on lane threads for 10,000 messages and " << sealed << " sealed batches";
    p.stop();
}

}  // namespace
}  // namespace cefd
