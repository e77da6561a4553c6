// Parse + map + JSON-encode throughput per core. Inputs are read before the timed loop.
#include <benchmark/benchmark.h>

#include <fstream>
#include <string>
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

void run(benchmark::State& state, const std::vector<std::string>& lines, bool encode) {
    Parser parser(ParseConfig{.collector_host_name = "collector"});
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
