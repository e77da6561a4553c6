// Spool append and replay throughput with ~100 KiB records (a gzip'ed 1 MiB batch), for each
// fsync policy. The spool directory is under $SPOOL_BENCH_DIR, else $TMPDIR, else /tmp: point
// it at the disk you mean to measure.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>
#include <string>

#include "stages/spool/record.h"
#include "stages/spool/spool.h"

namespace cefd {
namespace {

constexpr std::size_t body_bytes = 100 * 1024;

std::string bench_dir() {
    const char* base = std::getenv("SPOOL_BENCH_DIR");
    if (base == nullptr) base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/cefd-spool-bench-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    return pattern;
}

SealedBatch make_batch() {
    SealedBatch batch;
    batch.body.resize(body_bytes);
    std::mt19937_64 rng(42);  // incompressible, like gzip output
    for (auto& b : batch.body) b = static_cast<std::byte>(rng());
    batch.rows = 1'000;
    batch.json_bytes = 1'000'000;
    return batch;
}

SpoolConfig config_for(const std::string& dir, SpoolConfig::Fsync fsync) {
    SpoolConfig config;
    config.dir = dir;
    config.fsync = fsync;
    config.fsync_interval_ms = 1'000;
    return config;
}

void drain_and_ack(Spool& spool) {
    for (int i = 0; i < 1'000'000; ++i) {
        auto batch = spool.next(0);
        if (!batch) return;
        spool.ack(batch->id);
    }
}

// accept() of one batch: checksum, pwritev, and the fsync the policy asks for. Every 64
// batches the (untimed) sender drains and acknowledges, so the disk use stays bounded.
void BM_SpoolAppend(benchmark::State& state) {
    const auto fsync = static_cast<SpoolConfig::Fsync>(state.range(0));
    const std::string dir = bench_dir();
    {
        auto spool = std::move(Spool::open(config_for(dir, fsync))).value();
        const SealedBatch batch = make_batch();
        std::int64_t n = 0;
        for (auto _ : state) {
            SealedBatch copy = batch;  // accept() takes ownership; a 100 KiB copy is ~10 us
            benchmark::DoNotOptimize(spool->accept(std::move(copy)));
            if (++n % 64 == 0) {
                state.PauseTiming();
                drain_and_ack(*spool);
                state.ResumeTiming();
            }
        }
        state.SetBytesProcessed(n * static_cast<std::int64_t>(body_bytes));
        state.SetItemsProcessed(n);
    }
    std::filesystem::remove_all(dir);
}
BENCHMARK(BM_SpoolAppend)
    ->ArgName("fsync_batch0_interval1_never2")
    ->Arg(static_cast<int>(SpoolConfig::Fsync::batch))
    ->Arg(static_cast<int>(SpoolConfig::Fsync::interval))
    ->Arg(static_cast<int>(SpoolConfig::Fsync::never))
    ->UseRealTime();

// The floor for BM_SpoolAppend: the same 64-byte header + 100 KiB body with one pwritev into a
// plain file in the same directory, the same 100 KiB copy per batch, and the same fsync policy
// (batch: fdatasync after each write; interval: a thread fdatasyncs every second; never: none).
// Every 64 batches the file is truncated (untimed), as the spool's drain deletes segments.
void BM_PwritevFloor(benchmark::State& state) {
    const auto fsync = static_cast<SpoolConfig::Fsync>(state.range(0));
    const std::string dir = bench_dir();
    {
        const int fd = ::open((dir + "/floor").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) std::abort();
        std::jthread syncer;
        if (fsync == SpoolConfig::Fsync::interval)
            syncer = std::jthread([fd](std::stop_token stop) {
                while (!stop.stop_requested()) {
                    for (int i = 0; i < 100 && !stop.stop_requested(); ++i)
                        std::this_thread::sleep_for(std::chrono::milliseconds(10));
                    ::fdatasync(fd);
                }
            });
        const SealedBatch batch = make_batch();
        std::byte header[spool::header_bytes] = {};
        off_t offset = 0;
        std::int64_t n = 0;
        for (auto _ : state) {
            SealedBatch copy = batch;
            iovec iov[2] = {{header, sizeof header}, {copy.body.data(), copy.body.size()}};
            if (::pwritev(fd, iov, 2, offset) != static_cast<ssize_t>(sizeof header + copy.body.size())) std::abort();
            offset += static_cast<off_t>(sizeof header + copy.body.size());
            if (fsync == SpoolConfig::Fsync::batch) ::fdatasync(fd);
            if (++n % 64 == 0) {
                state.PauseTiming();
                if (::ftruncate(fd, 0) != 0) std::abort();
                offset = 0;
                state.ResumeTiming();
            }
        }
        syncer = {};
        ::close(fd);
        state.SetBytesProcessed(n * static_cast<std::int64_t>(body_bytes));
        state.SetItemsProcessed(n);
    }
    std::filesystem::remove_all(dir);
}
BENCHMARK(BM_PwritevFloor)
    ->ArgName("fsync_batch0_interval1_never2")
    ->Arg(static_cast<int>(SpoolConfig::Fsync::batch))
    ->Arg(static_cast<int>(SpoolConfig::Fsync::interval))
    ->Arg(static_cast<int>(SpoolConfig::Fsync::never))
    ->UseRealTime();

// A restart with 256 unacknowledged batches (25 MiB): Spool::open (recovery scan) and next()
// for every batch (pread + CRC check). The files are in the page cache after the first pass.
void BM_SpoolReplay(benchmark::State& state) {
    const auto fsync = static_cast<SpoolConfig::Fsync>(state.range(0));
    constexpr std::int64_t batches = 256;
    const std::string dir = bench_dir();
    {
        auto spool = std::move(Spool::open(config_for(dir, SpoolConfig::Fsync::never))).value();
        const SealedBatch batch = make_batch();
        for (std::int64_t i = 0; i < batches; ++i) {
            SealedBatch copy = batch;
            spool->accept(std::move(copy));
        }
    }
    std::int64_t handed_out = 0;
    for (auto _ : state) {
        auto spool = std::move(Spool::open(config_for(dir, fsync))).value();
        // Not acknowledged, so the next iteration replays them again.
        for (std::int64_t i = 0; i < batches; ++i) {
            auto batch = spool->next(0);
            if (!batch) break;
            benchmark::DoNotOptimize(batch->batch.body.data());
            ++handed_out;
        }
    }
    state.SetBytesProcessed(handed_out * static_cast<std::int64_t>(body_bytes));
    state.SetItemsProcessed(handed_out);
    std::filesystem::remove_all(dir);
}
BENCHMARK(BM_SpoolReplay)
    ->ArgName("fsync_batch0_interval1_never2")
    ->Arg(static_cast<int>(SpoolConfig::Fsync::batch))
    ->Arg(static_cast<int>(SpoolConfig::Fsync::never))
    ->UseRealTime();

// The checksum alone: written once per accept() and verified once per next().
void BM_SpoolCrc32c_100KiB(benchmark::State& state) {
    const SealedBatch batch = make_batch();
    for (auto _ : state) benchmark::DoNotOptimize(spool::crc32c(batch.body));
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body_bytes));
}
BENCHMARK(BM_SpoolCrc32c_100KiB);

}  // namespace
}  // namespace cefd
BENCHMARK_MAIN();
