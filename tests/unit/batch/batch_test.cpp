// Batcher: limits, tables, linger, both gzip back ends, refusal counting. Real compressors, real
// decompression with zlib and libdeflate, real JSON parsing with simdjson.
#include "stages/batch/batch.h"

#include <gtest/gtest.h>
#include <libdeflate.h>
#include <simdjson.h>
#include <zlib.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "engine/clock.h"
#include "engine/row/row_json.h"
#include "stages/batch/gzip.h"
#include "tests/support/counting_new.h"
#include "tests/support/support.h"

// Counts heap allocations while `counting` is set (AppendAllocatesOnlyTheBodyPerBatch).
namespace {
std::atomic<bool> counting{false};
std::atomic<std::size_t> allocations{0};
}  // namespace

void cefd_test_on_allocation() noexcept {
    if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
}

namespace cefd {
namespace {

struct CollectingSink final : BatchSink {
    std::vector<SealedBatch> batches;
    bool refuse = false;
    bool accept(SealedBatch&& batch) override {
        if (refuse) return false;
        batches.push_back(std::move(batch));
        return true;
    }
};

std::string gunzip_zlib(const std::vector<std::byte>& body, std::size_t max_bytes = 2 * 1024 * 1024) {
    z_stream zs{};
    EXPECT_EQ(inflateInit2(&zs, 16 + MAX_WBITS), Z_OK);
    std::string out(max_bytes, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(body.data()));
    zs.avail_in = static_cast<uInt>(body.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(inflate(&zs, Z_FINISH), Z_STREAM_END);
    out.resize(zs.total_out);
    inflateEnd(&zs);
    return out;
}

std::string gunzip_libdeflate(const std::vector<std::byte>& body, std::size_t json_bytes) {
    libdeflate_decompressor* d = libdeflate_alloc_decompressor();
    std::string out(json_bytes, '\0');
    std::size_t actual = 0;
    EXPECT_EQ(libdeflate_gzip_decompress(d, body.data(), body.size(), out.data(), out.size(), &actual),
              LIBDEFLATE_SUCCESS);
    libdeflate_free_decompressor(d);
    out.resize(actual);
    return out;
}

/// Parses `json` as an array of objects and returns the element count (-1 if it is not one).
long count_objects(const std::string& json) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(json).get(doc) != simdjson::SUCCESS) return -1;
    simdjson::dom::array array;
    if (doc.get_array().get(array) != simdjson::SUCCESS) return -1;
    long n = 0;
    for (auto element : array) {
        if (!element.is_object()) return -1;
        ++n;
    }
    return n;
}

/// Rows built from the real sample lines (the whole line as Message, plus a few header columns).
class SampleRows {
public:
    SampleRows() {
        lines_ = test::sample_lines(test::source_path("tests/data/synthetic-darktrace-cef.log"));
        for (const auto& l : test::sample_lines(test::source_path("tests/data/WithSecureViaConnectorSampleData.txt")))
            lines_.push_back(l);
    }
    const Row& row(std::size_t i, Table table = Table::common_security_log) {
        const std::string& line = lines_[i % lines_.size()];
        row_.clear();
        row_.set(Column::DeviceVendor, "Darktrace");
        row_.set(Column::DeviceProduct, "AI Analyst");
        row_.set(Column::Computer, "dt-master-01");
        row_.set(Column::DestinationPort, "443");
        row_.set(Column::Message, line);
        row_.receive_time_ns = 1'700'000'000'000'000'000 + static_cast<std::int64_t>(i) * 1000;
        row_.table = table;
        return row_;
    }
    [[nodiscard]] std::size_t size() const { return lines_.size(); }

private:
    std::vector<std::string> lines_;
    Row row_;
};

/// Both back ends, or libdeflate alone in a build without ISA-L.
std::vector<BatchConfig::Compressor> compressors_in_this_build() {
    if (!GzipCompressor::igzip_available()) return {BatchConfig::Compressor::libdeflate};
    return {BatchConfig::Compressor::igzip, BatchConfig::Compressor::libdeflate};
}

TEST(Batcher, BatchesNeverExceedMaxBytesAndKeepEveryRow) {
    for (const auto compressor : compressors_in_this_build()) {
        CollectingSink sink;
        BatchConfig config{.max_bytes = 8'192, .compressor = compressor};
        Batcher batcher(config, sink);
        SampleRows rows;
        constexpr std::size_t n = 5'000;
        for (std::size_t i = 0; i < n; ++i) batcher.append(rows.row(i));
        batcher.seal_all();

        ASSERT_GT(sink.batches.size(), 10U);
        std::uint64_t total = 0;
        for (const auto& b : sink.batches) {
            const std::string json = gunzip_zlib(b.body);
            EXPECT_EQ(json.size(), b.json_bytes);
            EXPECT_LE(json.size(), config.max_bytes);
            // Full batches are really full: the next row would not have fitted.
            EXPECT_EQ(count_objects(json), static_cast<long>(b.rows)) << json.substr(0, 200);
            EXPECT_EQ(gunzip_libdeflate(b.body, b.json_bytes), json);
            total += b.rows;
        }
        EXPECT_EQ(total, n) << batcher.compressor_name();
        EXPECT_EQ(read(batcher.stats().rows), n);
        EXPECT_EQ(read(batcher.stats().batches), sink.batches.size());
        EXPECT_EQ(read(batcher.stats().oversize_rows), 0U);
    }
}

// Full-size (1 MiB) batches of both tables interleaved: every batch inflates to exactly the rows
// it counts, and the batches of a table, joined, are every row of that table in order, byte for
// byte (nothing lost or doubled where a row is carried over into the next batch).
TEST(Batcher, FullSizeInterleavedBatchesInflateToExactlyTheirRows) {
    for (const auto compressor : compressors_in_this_build()) {
        CollectingSink sink;
        BatchConfig config{.max_bytes = 1'048'576, .compressor = compressor};
        Batcher batcher(config, sink);
        SampleRows rows;
        std::string expected[2];  // per table: every row's JSON, joined by ','
        std::vector<char> scratch(1 << 20);
        constexpr std::size_t n = 12'000;
        for (std::size_t i = 0; i < n; ++i) {
            const Row& row = rows.row(i, i % 3 == 0 ? Table::syslog : Table::common_security_log);
            std::string& e = expected[static_cast<std::size_t>(row.table) & 1U];
            if (!e.empty()) e += ',';
            e.append(scratch.data(), write_row_json(row, scratch.data()));
            batcher.append(row);
        }
        batcher.seal_all();

        std::string got[2];
        std::uint64_t total = 0;
        for (const auto& b : sink.batches) {
            const std::string json = gunzip_zlib(b.body);
            ASSERT_EQ(json.size(), b.json_bytes) << batcher.compressor_name();
            ASSERT_EQ(gunzip_libdeflate(b.body, b.json_bytes), json);
            ASSERT_EQ(count_objects(json), static_cast<long>(b.rows));
            ASSERT_GE(json.size(), 2U);
            std::string& g = got[static_cast<std::size_t>(b.table) & 1U];
            if (!g.empty()) g += ',';
            g += json.substr(1, json.size() - 2);
            total += b.rows;
        }
        EXPECT_GE(sink.batches.size(), 4U);  // both tables filled more than one 1 MiB batch
        EXPECT_EQ(total, n);
        EXPECT_TRUE(got[0] == expected[0]) << batcher.compressor_name();
        EXPECT_TRUE(got[1] == expected[1]) << batcher.compressor_name();
    }
}

TEST(Batcher, FullBatchesAreNearlyFull) {
    CollectingSink sink;
    BatchConfig config{.max_bytes = 1'048'576};
    Batcher batcher(config, sink);
    SampleRows rows;
    for (std::size_t i = 0; i < 20'000; ++i) batcher.append(rows.row(i));
    ASSERT_GE(sink.batches.size(), 2U);
    for (const auto& b : sink.batches) {
        EXPECT_LE(b.json_bytes, config.max_bytes);
        // Sample rows are under 2 KiB, so a sealed (not flushed) batch lacks less than that.
        EXPECT_GT(b.json_bytes, config.max_bytes - 4'096);
        EXPECT_LT(b.body.size(), b.json_bytes / 3) << "gzip should shrink CEF JSON several times";
    }
}

struct CountingSink final : BatchSink {
    std::size_t batches = 0;
    bool accept(SealedBatch&& batch) override {
        ++batches;
        SealedBatch dropped = std::move(batch);  // freed here, as the spool would after writing
        return true;
    }
};

TEST(Batcher, AppendAllocatesOnlyTheBodyPerBatch) {
    CountingSink sink;
    Batcher batcher(BatchConfig{.max_bytes = 65'536}, sink);
    SampleRows rows;
    std::vector<Row> prepared;
    for (std::size_t i = 0; i < rows.size(); ++i) prepared.push_back(rows.row(i));
    for (std::size_t i = 0; i < 1'000; ++i) batcher.append(prepared[i % prepared.size()]);  // warm up
    const std::size_t batches_before = sink.batches;
    allocations = 0;
    counting = true;
    for (std::size_t i = 0; i < 10'000; ++i) batcher.append(prepared[i % prepared.size()]);
    counting = false;
    const std::size_t sealed = sink.batches - batches_before;
    EXPECT_GT(sealed, 10U);
    EXPECT_EQ(allocations.load(), sealed) << "one allocation (the body) per sealed batch, none per row";
}

TEST(Batcher, RowAloneOverMaxBytesIsDroppedAndCounted) {
    CollectingSink sink;
    Batcher batcher(BatchConfig{.max_bytes = 2'048}, sink);
    SampleRows rows;
    batcher.append(rows.row(0));
    const std::string huge(4'000, 'x');
    Row big;
    big.set(Column::Message, huge);
    batcher.append(big);
    batcher.append(rows.row(1));
    batcher.seal_all();
    EXPECT_EQ(read(batcher.stats().oversize_rows), 1U);
    std::uint64_t total = 0;
    for (const auto& b : sink.batches) {
        EXPECT_EQ(count_objects(gunzip_zlib(b.body)), static_cast<long>(b.rows));
        total += b.rows;
    }
    EXPECT_EQ(total, 2U);
}

TEST(Batcher, KeepsTablesInSeparateBatches) {
    CollectingSink sink;
    Batcher batcher(BatchConfig{}, sink);
    SampleRows rows;
    for (std::size_t i = 0; i < 30; ++i)
        batcher.append(rows.row(i, i % 3 == 0 ? Table::syslog : Table::common_security_log));
    batcher.seal_all();
    ASSERT_EQ(sink.batches.size(), 2U);
    for (const auto& b : sink.batches) {
        EXPECT_EQ(b.rows, b.table == Table::syslog ? 10U : 20U);
        EXPECT_EQ(count_objects(gunzip_zlib(b.body)), static_cast<long>(b.rows));
    }
}

TEST(Batcher, SealsWhenLingerPasses) {
    CollectingSink sink;
    Batcher batcher(BatchConfig{.linger_ms = 50}, sink);
    SampleRows rows;
    const std::int64_t before = monotonic_ns();
    batcher.append(rows.row(0));
    batcher.append(rows.row(1));
    batcher.seal_if_due(before);  // not due yet
    EXPECT_TRUE(sink.batches.empty());
    batcher.seal_if_due(monotonic_ns() + 51'000'000);
    ASSERT_EQ(sink.batches.size(), 1U);
    EXPECT_EQ(sink.batches[0].rows, 2U);
    EXPECT_EQ(sink.batches[0].first_receive_ns, rows.row(0).receive_time_ns);
    EXPECT_EQ(sink.batches[0].last_receive_ns, rows.row(1).receive_time_ns);
    batcher.seal_if_due(monotonic_ns() + 1'000'000'000);  // empty: nothing more
    EXPECT_EQ(sink.batches.size(), 1U);
}

// SIGHUP: new limits seal what is open (no row lost or reordered) and apply to the next batch.
TEST(Batcher, ReconfiguredLimitsSealTheOpenBatchAndApplyToTheNext) {
    CollectingSink sink;
    Batcher batcher(BatchConfig{.max_bytes = 1'048'576, .linger_ms = 60'000}, sink);
    SampleRows rows;
    for (std::size_t i = 0; i < 10; ++i) batcher.append(rows.row(i));
    EXPECT_TRUE(sink.batches.empty());
    batcher.reconfigure_limits(8'192, 50);
    ASSERT_EQ(sink.batches.size(), 1U) << "the open batch is sealed by the reconfiguration";
    EXPECT_EQ(sink.batches[0].rows, 10U);
    for (std::size_t i = 10; i < 1'010; ++i) batcher.append(rows.row(i));
    batcher.seal_if_due(monotonic_ns() + 51'000'000);  // the new linger
    std::uint64_t total = 0;
    for (std::size_t b = 1; b < sink.batches.size(); ++b) {
        EXPECT_LE(sink.batches[b].json_bytes, 8'192U);
        total += sink.batches[b].rows;
    }
    EXPECT_GT(sink.batches.size(), 10U);
    EXPECT_EQ(total, 1'000U);
    EXPECT_EQ(read(batcher.stats().rows), 1'010U) << "stats carry across the reconfiguration";
    for (const auto& b : sink.batches) EXPECT_EQ(count_objects(gunzip_zlib(b.body)), static_cast<long>(b.rows));
}

TEST(Batcher, CountsBatchesTheSinkRefused) {
    CollectingSink sink;
    sink.refuse = true;
    Batcher batcher(BatchConfig{}, sink);
    SampleRows rows;
    for (std::size_t i = 0; i < 7; ++i) batcher.append(rows.row(i));
    batcher.seal_all();
    EXPECT_EQ(read(batcher.stats().sink_refused), 1U);
    EXPECT_EQ(read(batcher.stats().sink_refused_rows), 7U);
}

TEST(Batcher, RegistersMetricsWithLabels) {
    CollectingSink sink;
    Batcher batcher(BatchConfig{}, sink);
    MetricsRegistry registry;
    batcher.register_metrics(registry, "lane=\"0\"");
    SampleRows rows;
    batcher.append(rows.row(0));
    batcher.seal_all();
    EXPECT_EQ(registry.value("batch_rows_total", "lane=\"0\""), 1.0);
    EXPECT_EQ(registry.value("batch_batches_total"), 1.0);
    EXPECT_TRUE(registry.has("batch_dropped_rows_total", "lane=\"0\",reason=\"oversize\""));
    EXPECT_TRUE(registry.has("batch_dropped_rows_total", "lane=\"0\",reason=\"spool_refused\""));
    EXPECT_EQ(registry.value("batch_size_rows"), 1.0);  // a histogram's value is its count
}

TEST(Batcher, DropsMoveTheReasonLabelledCounters) {
    CollectingSink sink;
    sink.refuse = true;
    Batcher batcher(BatchConfig{}, sink);
    MetricsRegistry registry;
    batcher.register_metrics(registry, "lane=\"3\"");
    SampleRows rows;
    batcher.append(rows.row(0));
    batcher.seal_all();
    EXPECT_EQ(registry.value("batch_dropped_rows_total", "reason=\"spool_refused\""), 1.0);
    EXPECT_EQ(registry.value("batch_spool_refused_batches_total", "lane=\"3\""), 1.0);
    EXPECT_EQ(registry.value("batch_dropped_rows_total", "reason=\"oversize\""), 0.0);
}

TEST(Batcher, ObservesRowsAndBytesOncePerSealedBatch) {
    CollectingSink sink;
    Batcher batcher(BatchConfig{}, sink);
    SampleRows rows;
    for (std::size_t i = 0; i < 3; ++i) batcher.append(rows.row(i));
    batcher.seal_all();
    for (std::size_t i = 0; i < 7; ++i) batcher.append(rows.row(i));
    batcher.seal_all();
    ASSERT_EQ(sink.batches.size(), 2U);
    const BatchStats& stats = batcher.stats();
    EXPECT_EQ(stats.size_rows.count(), 2U);
    EXPECT_DOUBLE_EQ(stats.size_rows.sum(), 10.0);
    EXPECT_EQ(stats.size_rows.bucket(1), 2U);  // both in (1, 10]
    EXPECT_EQ(stats.size_bytes.count(), 2U);
    EXPECT_DOUBLE_EQ(stats.size_bytes.sum(), static_cast<double>(sink.batches[0].json_bytes + sink.batches[1].json_bytes));
}

TEST(GzipCompressor, BothBackEndsWriteStandardGzip) {
    std::string input;
    SampleRows rows;
    for (std::size_t i = 0; input.size() < 200'000; ++i) input += test::sample_lines(
        test::source_path("tests/data/synthetic-darktrace-cef.log"))[i % 5];
    for (const auto kind : {GzipCompressor::Kind::igzip, GzipCompressor::Kind::libdeflate}) {
        for (const std::uint32_t level : {0U, 1U, 6U, 9U}) {
            GzipCompressor gzip(kind, level, input.size());
            const auto out = gzip.compress({input.data(), input.size()});
            ASSERT_FALSE(out.empty()) << gzip.name();
            // Every level compresses (libdeflate's own level 0 would store): rows shrink 8x.
            EXPECT_LT(out.size(), input.size() / 4) << gzip.name() << " level " << level;
            const std::vector<std::byte> body(out.begin(), out.end());
            EXPECT_EQ(gunzip_zlib(body), input) << gzip.name() << " level " << level;
            EXPECT_EQ(gunzip_libdeflate(body, input.size()), input) << gzip.name();
        }
    }
}

// A row whose JSON fits max_bytes must not be dropped as "oversize". The drop used the encoder's
// worst-case bound (6 x value bytes) against the 2 * max_bytes buffer, so with a lowered
// batch.max_bytes (live on SIGHUP) plain-ASCII rows of a few KiB were lost. Found in review.
TEST(Batcher, ARowWhoseJsonFitsIsKeptWhateverItsWorstCase) {
    CollectingSink sink;
    Batcher batcher(BatchConfig{.max_bytes = 4'096}, sink);
    const std::string text(1'500, 'x');  // no escapes: its JSON is ~1.6 KB, well under 4 KiB
    Row row;
    row.set(Column::Message, text);
    row.receive_time_ns = 1'700'000'000'000'000'000;
    std::vector<char> scratch(1 << 16);
    const std::size_t json = static_cast<std::size_t>(write_row_json(row, scratch.data()) - scratch.data());
    ASSERT_LT(json + 2, 4'096U) << "the row alone fits a batch";
    batcher.append(row);
    batcher.seal_all();
    EXPECT_EQ(read(batcher.stats().oversize_rows), 0U) << "a row of " << json << " JSON bytes was dropped as oversize";
    ASSERT_EQ(sink.batches.size(), 1U);
    EXPECT_EQ(sink.batches[0].rows, 1U);
}

// The same at a realistic size: batch.max_bytes = 64 KiB, a 25 KB message (JSON ~25 KB); and a
// row whose real JSON is over max_bytes is still dropped.
TEST(Batcher, ATwentyFiveKilobyteRowFitsA64KiBBatchAndALargerOneIsStillDropped) {
    CollectingSink sink;
    Batcher batcher(BatchConfig{.max_bytes = 65'536}, sink);
    const std::string text(25'000, 'y');
    Row row;
    row.set(Column::Message, text);
    batcher.append(row);
    batcher.seal_all();
    EXPECT_EQ(read(batcher.stats().oversize_rows), 0U);
    EXPECT_EQ(sink.batches.size(), 1U);
    const std::string long_text(70'000, 'z');  // Row keeps a view: the text must outlive it
    Row too_large;
    too_large.set(Column::Message, long_text);
    batcher.append(too_large);
    batcher.seal_all();
    EXPECT_EQ(read(batcher.stats().oversize_rows), 1U);
    EXPECT_EQ(sink.batches.size(), 1U);
}

// Incompressible input at the fastest levels: high-entropy bytes and CJK-like UTF-8 (every byte
// 0x80 or above, which static Huffman codes spend 9 bits on). The output buffer is sized for
// the worst case, so igzip must not overflow (it would fall back to libdeflate with an error
// line), and what comes out must inflate to the input. A guard for a review suspicion.
TEST(GzipCompressor, IncompressibleInputFitsTheWorstCaseBufferAtEveryLevel) {
    constexpr std::size_t size = 1 << 20;
    std::string random(size, '\0');
    std::uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (auto& c : random) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c = static_cast<char>(x);
    }
    std::string cjk;
    while (cjk.size() + 3 <= size) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const std::uint32_t cp = 0x4E00 + static_cast<std::uint32_t>(x % 0x5000);  // CJK ideographs
        cjk += static_cast<char>(0xE0 | (cp >> 12));
        cjk += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        cjk += static_cast<char>(0x80 | (cp & 0x3F));
    }
    std::vector<GzipCompressor::Kind> kinds{GzipCompressor::Kind::libdeflate};
    if (GzipCompressor::igzip_available()) kinds.push_back(GzipCompressor::Kind::igzip);
    for (const auto kind : kinds) {
        for (const std::uint32_t level : {0U, 1U, 6U}) {
            GzipCompressor gzip(kind, level, size);
            for (const std::string* input : {&random, &cjk}) {
                const auto out = gzip.compress(*input);
                ASSERT_FALSE(out.empty()) << gzip.name() << " level " << level;
                const std::vector<std::byte> body(out.begin(), out.end());
                EXPECT_EQ(gunzip_libdeflate(body, input->size()), *input) << gzip.name() << " level " << level;
            }
        }
    }
}

}  // namespace
}  // namespace cefd
