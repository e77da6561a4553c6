// Parse + map + JSON-encode throughput per core. Inputs are read before the timed loop.
#include <benchmark/benchmark.h>

#include <cstring>
#include <ctime>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "engine/row/row_json.h"
#include "stages/parse/parse.h"

namespace cefd {
namespace {

std::vector<std::string> load(const char* relative) {
    std::vector<std::string> lines;
    std::ifstream in(std::string(CEFD_SOURCE_DIR) + "/" + relative);
    for (std::string line; std::getline(in, line);)
        if (!line.empty() && line[0] != '#') lines.push_back(line);
    return lines;
}

MessageMeta bench_meta() {
    MessageMeta meta;
    meta.receive_time_ns = 1'710'409'920'123'456'789;
    meta.source.family = AF_INET;
    meta.source.addr[0] = 127;
    meta.source.addr[3] = 1;
    return meta;
}

void run(benchmark::State& state, const std::vector<std::string>& lines, bool encode,
         ParseConfig::NonCef non_cef = ParseConfig::NonCef::drop) {
    Parser parser(ParseConfig{.non_cef = non_cef, .collector_host_name = "collector"});
    Row row;
    const MessageMeta meta = bench_meta();
    std::vector<char> out(1 << 20);
    std::size_t bytes = 0;
    std::size_t i = 0;
    for (auto _ : state) {
        const std::string& line = lines[i];
        i = i + 1 == lines.size() ? 0 : i + 1;
        const ParseResult r = parser.parse(line, meta, row);
        benchmark::DoNotOptimize(r);
        if (encode && r.outcome == ParseOutcome::row) {
            char* end = write_row_json(row, out.data());
            benchmark::DoNotOptimize(end);
        }
        bytes += line.size();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
    state.SetItemsProcessed(state.iterations());
}

void BM_ParseEncode_Darktrace(benchmark::State& state) {
    static const auto lines = load("tests/data/synthetic-darktrace-cef.log");
    run(state, lines, true);
}
BENCHMARK(BM_ParseEncode_Darktrace);

void BM_ParseOnly_Darktrace(benchmark::State& state) {
    static const auto lines = load("tests/data/synthetic-darktrace-cef.log");
    run(state, lines, false);
}
BENCHMARK(BM_ParseOnly_Darktrace);

void BM_ParseEncode_ModelBreach(benchmark::State& state) {
    static const std::vector<std::string> lines = {load("tests/data/synthetic-darktrace-cef.log").front()};
    run(state, lines, true);
}
BENCHMARK(BM_ParseEncode_ModelBreach);

void BM_ParseEncode_WithSecure(benchmark::State& state) {
    static const auto lines = load("tests/data/WithSecureViaConnectorSampleData.txt");
    run(state, lines, true);
}
BENCHMARK(BM_ParseEncode_WithSecure);

// non_cef = "syslog_table": plain syslog lines (3164 with tag and pid, 5424 with SD) to Syslog rows.
void BM_ParseEncode_SyslogTable(benchmark::State& state) {
    static const std::vector<std::string> lines = {
        "<38>Mar 14 09:15:02 web-01 sshd[2201]: Accepted publickey for root from 192.0.2.9 port 52144 ssh2: "
        "ED25519 SHA256:Yx3kLq0vUu1nW2k9n7m5Yx3kLq0vUu1nW2k9n7m5Yx3",
        "<86>Mar  4 09:15:07 web-02 CRON[99]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
        R"(<165>1 2024-03-14T10:22:03.412345+01:00 mymachine.example.com evntslog 77 ID47 [exampleSDID@32473 )"
        R"(iut="3" eventSource="Application" eventID="1011"] An application event log entry)",
        "<13>Mar 14 09:15:02 app: a line whose header has no host",
    };
    run(state, lines, true, ParseConfig::NonCef::syslog_table);
}
BENCHMARK(BM_ParseEncode_SyslogTable);

// The 853-byte Darktrace model breaches that bench/peers and cefd-loadgen --payload 853b send.
const std::vector<std::string>& darktrace_853b() {
    static const auto lines = load("bench/peers/darktrace-cef-853b.txt");
    return lines;
}

// parse + map + encode on the 853-byte rows, against BM_Floor_Scan_Darktrace853 on the same
// bytes in the same run: the ratio is how far the hot path is from reading its input once.
void BM_ParseEncode_Darktrace853(benchmark::State& state) { run(state, darktrace_853b(), true); }
BENCHMARK(BM_ParseEncode_Darktrace853);

// The floor: one SIMD pass over each line (glibc memchr for a byte no line holds, so it reads
// every byte), nothing parsed, nothing written.
void BM_Floor_Scan_Darktrace853(benchmark::State& state) {
    const auto& lines = darktrace_853b();
    std::size_t bytes = 0;
    std::size_t i = 0;
    for (auto _ : state) {
        const std::string& line = lines[i];
        i = i + 1 == lines.size() ? 0 : i + 1;
        benchmark::DoNotOptimize(std::memchr(line.data(), '\x01', line.size()));
        bytes += line.size();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Floor_Scan_Darktrace853);

// The same 853-byte lines the way the pipeline meets them, to split the in-situ cost (bench/README.md
// "Where each microsecond goes": parse + map + encode costs ~1.7x this file's kernel there) into
// its causes. Arg 0: lines in a fixed-seed random order instead of the 48-line cycle (what the
// branch predictor can learn). Arg 1: each line read from its own place in a 16 MiB arena (the
// lane's ring size) and each row appended to a 1 MiB buffer (the batch), instead of one hot
// output; both as the worker does. Arg 2: a 2 ms sleep after every N lines (the worker's nap;
// at 100k/s a lane's worker takes ~150 lines per wake-up), 0 = never.
void BM_ParseEncode_Darktrace853_AsInPipeline(benchmark::State& state) {
    const bool shuffled = state.range(0) != 0;
    const bool spread = state.range(1) != 0;
    const long nap_every = state.range(2);
    const auto& lines = darktrace_853b();
    constexpr std::size_t arena_bytes = std::size_t{16} << 20;
    std::vector<char> arena(arena_bytes);
    std::vector<std::string_view> order;
    std::uint64_t x = 0x9E3779B97F4A7C15ull;  // xorshift64, fixed seed
    for (std::size_t at = 0, n = 0;; ++n) {
        std::size_t pick = n % lines.size();
        if (shuffled) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            pick = static_cast<std::size_t>(x % lines.size());
        }
        const std::string& line = lines[pick];
        if (!spread) {
            if (n == 1 << 15) break;
            order.emplace_back(line);
            continue;
        }
        if (at + line.size() > arena_bytes) break;
        std::memcpy(arena.data() + at, line.data(), line.size());
        order.emplace_back(arena.data() + at, line.size());
        at += (line.size() + 63) & ~std::size_t{63};
    }
    Parser parser(ParseConfig{.collector_host_name = "collector"});
    Row row;
    const MessageMeta meta = bench_meta();
    constexpr std::size_t out_bytes = std::size_t{1} << 20;
    std::vector<char> out(out_bytes + 65536);
    std::size_t out_at = 0;
    std::size_t bytes = 0;
    std::size_t i = 0;
    for (auto _ : state) {
        const std::string_view line = order[i];
        i = i + 1 == order.size() ? 0 : i + 1;
        const ParseResult r = parser.parse(line, meta, row);
        benchmark::DoNotOptimize(r);
        if (r.outcome == ParseOutcome::row) {
            char* end = write_row_json(row, out.data() + out_at);
            benchmark::DoNotOptimize(end);
            const auto written = static_cast<std::size_t>(end - out.data());
            if (spread) out_at = written >= out_bytes ? 0 : written;
        }
        bytes += line.size();
        if (nap_every != 0 && i % static_cast<std::size_t>(nap_every) == 0) {
            const timespec nap{0, 2'000'000};
            nanosleep(&nap, nullptr);
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseEncode_Darktrace853_AsInPipeline)
    ->ArgNames({"shuffled", "spread", "nap_every"})
    ->Args({0, 0, 0})
    ->Args({1, 0, 0})
    ->Args({0, 1, 0})
    ->Args({1, 1, 0})
    ->Args({1, 1, 150})
    ->Args({1, 1, 1500})
    ->Args({1, 1, 15000});

void BM_EncodeOnly_Darktrace(benchmark::State& state) {
    const auto lines = load("tests/data/synthetic-darktrace-cef.log");
    Parser parser(ParseConfig{.collector_host_name = "collector"});
    Row row;
    (void)parser.parse(lines.front(), bench_meta(), row);
    std::vector<char> out(1 << 20);
    std::size_t bytes = 0;
    for (auto _ : state) {
        char* end = write_row_json(row, out.data());
        benchmark::DoNotOptimize(end);
        bytes += static_cast<std::size_t>(end - out.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EncodeOnly_Darktrace);

}  // namespace
}  // namespace cefd
BENCHMARK_MAIN();
