// Deduper lookups per second: distinct messages (all misses, table churning) and repeats (hits).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "stages/dedupe/dedupe.h"

namespace cefd {
namespace {

// `n` distinct messages of about 130 bytes, or of `bytes` when that is longer (a msg= pad: the
// text after the syslog timestamp of an 853-byte Darktrace breach is about 830 bytes).
std::vector<std::string> messages(std::size_t n, std::size_t bytes = 0) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < n; ++i) {
        std::string line = "dt-master-01 CEF:0|Darktrace|Enterprise Immune System|6.1|26|Anomalous Connection|7|externalId=" +
                           std::to_string(1'900'000 + i) + " dvc=192.0.2.14 dst=203.0.113.50 dpt=443";
        if (line.size() + 5 < bytes) line += " msg=" + std::string(bytes - line.size() - 5, 'm');
        out.push_back(std::move(line));
    }
    return out;
}

void BM_Dedupe_DistinctMessages(benchmark::State& state) {
    const auto lines = messages(100'000, static_cast<std::size_t>(state.range(0)));
    Deduper deduper(DedupeConfig{});
    SourceAddress source;
    source.family = 2;
    std::int64_t now = 0;
    std::size_t i = 0;
    std::size_t bytes = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(deduper.is_repeat(source, lines[i], now += 1000));
        bytes += lines[i].size();
        i = i + 1 == lines.size() ? 0 : i + 1;
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_Dedupe_DistinctMessages)->ArgName("bytes")->Arg(0)->Arg(830);

void BM_Dedupe_Repeats(benchmark::State& state) {
    const auto lines = messages(64);
    Deduper deduper(DedupeConfig{});
    SourceAddress source;
    source.family = 2;
    std::size_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(deduper.is_repeat(source, lines[i], 1000));
        i = (i + 1) & 63;
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Dedupe_Repeats);

}  // namespace
}  // namespace cefd
BENCHMARK_MAIN();
