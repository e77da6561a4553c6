// bench/micro/batch_bench.cpp: the batcher's cost per row (encode into the batch buffer, seal,
// gzip) and gzip alone on 1 MiB of rows, igzip vs libdeflate. Rows are built from the sample
// CEF lines (header fields split on '|', the extension as AdditionalExtensions, the line as
// Message), which is about the size and shape of what the parser produces.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "engine/row/row_json.h"
#include "stages/batch/batch.h"
#include "stages/batch/gzip.h"

#if CEFD_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

namespace cefd {
namespace {

std::vector<std::string> sample_lines() {
    std::vector<std::string> lines;
    for (const char* name : {"/tests/data/synthetic-darktrace-cef.log", "/tests/data/WithSecureViaConnectorSampleData.txt",
                             "/tests/data/RadiflowIsid_RawLogs.txt"}) {
        FILE* f = std::fopen((std::string(CEFD_SOURCE_DIR) + name).c_str(), "rb");
        if (f == nullptr) continue;
        char buffer[65536];
        while (std::fgets(buffer, sizeof buffer, f) != nullptr) {
            std::string line(buffer);
            while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
            if (!line.empty() && line[0] != '#' && line.find("CEF:") != std::string::npos) lines.push_back(line);
        }
        std::fclose(f);
    }
    return lines;
}

struct Rows {
    std::vector<std::string> lines = sample_lines();
    std::vector<Row> rows;
    Rows() {
        constexpr Column header[] = {Column::DeviceVendor, Column::DeviceProduct, Column::DeviceVersion,
                                     Column::DeviceEventClassID, Column::Activity, Column::LogSeverity};
        for (const std::string& line : lines) {
            Row& row = rows.emplace_back();
            std::string_view rest = std::string_view(line).substr(line.find("CEF:"));
            rest.remove_prefix(rest.find('|') + 1);
            for (Column c : header) {
                const auto bar = rest.find('|');
                if (bar == std::string_view::npos) break;
                row.set(c, rest.substr(0, bar));
                rest.remove_prefix(bar + 1);
            }
            row.set(Column::AdditionalExtensions, rest);
            row.set(Column::Message, line);
            row.set(Column::Computer, "dt-master-01");
            row.receive_time_ns = 1'764'404'901'123'456'000;
        }
    }
};

const Rows& rows() {
    static const Rows r;
    return r;
}

std::string one_mib_of_json() {
    std::string json = "[";
    std::vector<char> scratch(1 << 20);
    for (std::size_t i = 0;; ++i) {
        const Row& row = rows().rows[i % rows().rows.size()];
        char* end = write_row_json(row, scratch.data());
        if (json.size() + static_cast<std::size_t>(end - scratch.data()) + 2 > 1'048'576) break;
        if (i > 0) json += ',';
        json.append(scratch.data(), end);
    }
    json += ']';
    return json;
}

struct NullSink final : BatchSink {
    std::uint64_t gzip_bytes = 0;
    bool accept(SealedBatch&& batch) override {
        gzip_bytes += batch.body.size();
        return true;
    }
};

void gzip_1mib(benchmark::State& state, GzipCompressor::Kind kind) {
    const std::string json = one_mib_of_json();
    GzipCompressor gzip(kind, 1, json.size());
    std::size_t out = 0;
    for (auto _ : state) {
        const auto body = gzip.compress({json.data(), json.size()});
        out = body.size();
        benchmark::DoNotOptimize(body.data());
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(json.size()));
    state.counters["ratio"] = static_cast<double>(json.size()) / static_cast<double>(out);
    state.SetLabel(gzip.name());
}

void BM_Gzip1MiB_Igzip(benchmark::State& state) { gzip_1mib(state, GzipCompressor::Kind::igzip); }
void BM_Gzip1MiB_Libdeflate(benchmark::State& state) { gzip_1mib(state, GzipCompressor::Kind::libdeflate); }
BENCHMARK(BM_Gzip1MiB_Igzip);
BENCHMARK(BM_Gzip1MiB_Libdeflate);

#if CEFD_HAVE_ISAL
/// One stateless igzip gzip member per 1 MiB batch, as the batcher writes it, at ISA-L `level`
/// with a level buffer of `level_buf_bytes`; MB/s of JSON in per core, and the ratio.
void igzip_1mib(benchmark::State& state, std::uint32_t level, std::uint32_t level_buf_bytes) {
    const std::string json = one_mib_of_json();
    std::vector<std::uint8_t> level_buf(level_buf_bytes);
    std::vector<std::uint8_t> out(json.size() + json.size() / 8 + 65536);
    std::uint32_t written = 0;
    for (auto _ : state) {
        isal_zstream stream;
        isal_deflate_stateless_init(&stream);
        stream.gzip_flag = IGZIP_GZIP;
        stream.level = level;
        stream.level_buf = level_buf.data();
        stream.level_buf_size = static_cast<std::uint32_t>(level_buf.size());
        stream.end_of_stream = 1;
        stream.flush = NO_FLUSH;
        stream.next_in = reinterpret_cast<std::uint8_t*>(const_cast<char*>(json.data()));
        stream.avail_in = static_cast<std::uint32_t>(json.size());
        stream.next_out = out.data();
        stream.avail_out = static_cast<std::uint32_t>(out.size());
        if (isal_deflate_stateless(&stream) != COMP_OK) {
            state.SkipWithError("isal_deflate_stateless failed");
            return;
        }
        written = stream.total_out;
        benchmark::DoNotOptimize(out.data());
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(json.size()));
    state.counters["ratio"] = static_cast<double>(json.size()) / static_cast<double>(written);
    state.counters["level_buf_kib"] = static_cast<double>(level_buf_bytes) / 1024.0;
}
#endif

// igzip at each of ISA-L's own levels 0..3 (GzipCompressor reaches 1..3 only), each with its
// default level buffer.
void BM_Gzip1MiB_IgzipLevel(benchmark::State& state) {
#if CEFD_HAVE_ISAL
    constexpr std::uint32_t level_buf_sizes[] = {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT, ISAL_DEF_LVL2_DEFAULT,
                                                 ISAL_DEF_LVL3_DEFAULT};
    const auto level = static_cast<std::uint32_t>(state.range(0));
    igzip_1mib(state, level, level_buf_sizes[level]);
#else
    state.SkipWithError("built without ISA-L");
#endif
}
BENCHMARK(BM_Gzip1MiB_IgzipLevel)->ArgName("level")->DenseRange(0, 3);

// igzip level 1 with each of ISA-L's level-buffer sizes (its token buffer: 1K, 16K, 32K, 64K =
// the default GzipCompressor uses, 128K tokens of 4 bytes): a smaller one leaves more of L2 to
// the batch, at the cost of shorter Huffman blocks.
void BM_Gzip1MiB_IgzipLevel1Buffer(benchmark::State& state) {
#if CEFD_HAVE_ISAL
    constexpr std::uint32_t sizes[] = {ISAL_DEF_LVL1_MIN, ISAL_DEF_LVL1_SMALL, ISAL_DEF_LVL1_MEDIUM, ISAL_DEF_LVL1_LARGE,
                                       ISAL_DEF_LVL1_EXTRA_LARGE};
    igzip_1mib(state, 1, sizes[state.range(0)]);
#else
    state.SkipWithError("built without ISA-L");
#endif
}
BENCHMARK(BM_Gzip1MiB_IgzipLevel1Buffer)->ArgName("size")->DenseRange(0, 4);

// libdeflate at gzip levels 1 and 6 on the same batch.
void BM_Gzip1MiB_LibdeflateLevel(benchmark::State& state) {
    const std::string json = one_mib_of_json();
    GzipCompressor gzip(GzipCompressor::Kind::libdeflate, static_cast<std::uint32_t>(state.range(0)), json.size());
    std::size_t out = 0;
    for (auto _ : state) {
        const auto body = gzip.compress({json.data(), json.size()});
        out = body.size();
        benchmark::DoNotOptimize(body.data());
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(json.size()));
    state.counters["ratio"] = static_cast<double>(json.size()) / static_cast<double>(out);
}
BENCHMARK(BM_Gzip1MiB_LibdeflateLevel)->ArgName("level")->Arg(1)->Arg(6);

void append_rows(benchmark::State& state, BatchConfig::Compressor compressor) {
    NullSink sink;
    Batcher batcher(BatchConfig{.compressor = compressor}, sink);
    const auto& all = rows().rows;
    std::size_t i = 0;
    for (auto _ : state) {
        batcher.append(all[i]);
        if (++i == all.size()) i = 0;
    }
    batcher.seal_all();
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(static_cast<std::int64_t>(read(batcher.stats().json_bytes)));
    state.SetLabel(batcher.compressor_name());
}

void BM_BatchAppend_Igzip(benchmark::State& state) { append_rows(state, BatchConfig::Compressor::igzip); }
void BM_BatchAppend_Libdeflate(benchmark::State& state) { append_rows(state, BatchConfig::Compressor::libdeflate); }
BENCHMARK(BM_BatchAppend_Igzip);
BENCHMARK(BM_BatchAppend_Libdeflate);

// The per-batch cost of the batch_size_rows histogram (one observe() per sealed batch).
void BM_HistogramObserve(benchmark::State& state) {
    BatchStats stats;
    double rows = 1;
    for (auto _ : state) {
        stats.size_rows.observe(rows);
        rows = rows < 20'000 ? rows * 1.7 : 1;  // walk every bucket, +Inf included
    }
    benchmark::DoNotOptimize(stats.size_rows.count());
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HistogramObserve);

}  // namespace
}  // namespace cefd

BENCHMARK_MAIN();
