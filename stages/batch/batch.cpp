// stages/batch/batch.cpp: the Batcher. The batch JSON format, owned here:
//
//   "[" row ("," row)* "]"     rows are write_row_json() objects; no whitespace, no newline.
//
// Each table (CommonSecurityLog, Syslog) has its own buffer of 2 * max_bytes + 16 bytes: a
// batch never holds more than max_bytes, so there is always room for one more row of up to
// max_bytes (a longer one is dropped as oversize anyway). A row is encoded once, in place, at
// the end of the buffer; if it pushes the array past max_bytes, the batch is sealed without it
// and its bytes are moved to the start of the buffer (one memmove per batch). A row whose worst
// case (row_json_bound) exceeds even the empty buffer, as with a small max_bytes, is encoded into
// a scratch buffer instead and kept if its real JSON fits (append_large).
#include "stages/batch/batch.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "engine/clock.h"
#include "engine/log.h"
#include "engine/row/row_json.h"
#include "stages/batch/gzip.h"

namespace cefd {

void BatchConfig::validate(ConfigErrors& errors) const {
    // 1 KiB: below that a batch holds a handful of rows and the request rate limit bites first.
    errors.check_range<std::uint32_t>("batch.max_bytes", max_bytes, 1'024, 1'048'576);
    errors.check_range<std::uint32_t>("batch.linger_ms", linger_ms, 1, 60'000);
    errors.check_range<std::uint32_t>("batch.gzip_level", gzip_level, 0, 9);
#if !CEFD_HAVE_ISAL
    errors.check("batch.compressor", compressor != Compressor::igzip,
                 "\"igzip\" needs a build with ISA-L (libisal-dev); use \"auto\" or \"libdeflate\"");
#endif
}

namespace {

struct TableBatch {
    std::unique_ptr<char[]> data;
    std::size_t used = 0;            // bytes of "[" row ("," row)*; 0 when empty
    std::uint32_t rows = 0;
    std::int64_t first_receive_ns = 0;
    std::int64_t last_receive_ns = 0;
    std::int64_t first_monotonic_ns = 0;  // when the first row arrived: drives linger_ms
    Table table = Table::common_security_log;
};

GzipCompressor::Kind pick(BatchConfig::Compressor c) {
    switch (c) {
        case BatchConfig::Compressor::libdeflate: return GzipCompressor::Kind::libdeflate;
        case BatchConfig::Compressor::igzip: return GzipCompressor::Kind::igzip;
        case BatchConfig::Compressor::automatic: break;
    }
    return GzipCompressor::igzip_available() ? GzipCompressor::Kind::igzip : GzipCompressor::Kind::libdeflate;
}

}  // namespace

class Batcher::Impl {
public:
    Impl(const BatchConfig& config, BatchSink& sink, BatchStats& stats)
        : config_(config),
          max_bytes_(config.max_bytes),
          linger_ns_(static_cast<std::int64_t>(config.linger_ms) * 1'000'000),
          capacity_(2 * static_cast<std::size_t>(config.max_bytes) + 16),
          sink_(sink),
          stats_(stats),
          gzip_(pick(config.compressor), config.gzip_level, config.max_bytes) {
        for (std::size_t i = 0; i < batches_.size(); ++i) {
            batches_[i].data = std::make_unique<char[]>(capacity_);
            batches_[i].table = static_cast<Table>(i);
        }
    }

    void append(const Row& row) {
        TableBatch& b = batches_[static_cast<std::size_t>(row.table) & 1U];
        const std::size_t bound = row_json_bound(row);
        if (bound + 2 > capacity_ - b.used) {
            // Only a row whose bound exceeds max_bytes gets here (see the file comment).
            if (b.rows > 0) seal(b, b.used);
            // Its worst case (6 bytes per value byte) does not fit even an empty buffer, as with
            // a lowered max_bytes: encode it aside and judge it by its real size, as any row.
            if (bound + 2 > capacity_) return append_large(b, row, bound);
        }
        const std::size_t start = b.used;
        b.data[start] = b.rows == 0 ? '[' : ',';
        char* const row_begin = b.data.get() + start + 1;
        const std::size_t row_bytes = static_cast<std::size_t>(write_row_json(row, row_begin) - row_begin);
        CEFD_ASSERT(row_bytes <= bound);
        if (row_bytes + 2 > max_bytes_) {
            b.used = start;  // "[" row "]" alone is over the limit: undo
            return drop_oversize(row);
        }
        if (start + 1 + row_bytes + 1 > max_bytes_) {
            // The closing "]" would not fit: seal what was there before this row, then carry the
            // row over. seal() writes "]" over the "," in front of it, which the row does not need.
            seal(b, start);
            b.data[0] = '[';
            std::memmove(b.data.get() + 1, row_begin, row_bytes);
            b.used = 1 + row_bytes;
        } else {
            b.used = start + 1 + row_bytes;
        }
        note_row(b, row);
    }

    // b is empty (just sealed). The rare path: scratch_ grows once to the largest bound seen.
    void append_large(TableBatch& b, const Row& row, std::size_t bound) {
        if (scratch_.size() < bound) scratch_.resize(bound);
        const std::size_t row_bytes = static_cast<std::size_t>(write_row_json(row, scratch_.data()) - scratch_.data());
        if (row_bytes + 2 > max_bytes_) return drop_oversize(row);
        b.data[0] = '[';
        std::memcpy(b.data.get() + 1, scratch_.data(), row_bytes);
        b.used = 1 + row_bytes;
        note_row(b, row);
    }

    void note_row(TableBatch& b, const Row& row) {
        if (b.rows == 0) {
            b.first_receive_ns = b.last_receive_ns = row.receive_time_ns;
            b.first_monotonic_ns = monotonic_ns();
        } else {
            b.first_receive_ns = std::min(b.first_receive_ns, row.receive_time_ns);
            b.last_receive_ns = std::max(b.last_receive_ns, row.receive_time_ns);
        }
        ++b.rows;
    }

    void seal_if_due(std::int64_t now_ns) {
        for (auto& b : batches_)
            if (b.rows > 0 && now_ns - b.first_monotonic_ns >= linger_ns_) seal(b, b.used);
    }

    void seal_all() {
        for (auto& b : batches_)
            if (b.rows > 0) seal(b, b.used);
    }

    const char* compressor_name() const noexcept { return gzip_.name(); }
    const BatchConfig& config() const noexcept { return config_; }
    BatchSink& sink() const noexcept { return sink_; }

private:
    /// Seals the first `end` bytes of `b` ("[" row ("," row)*, without the closing bracket) and
    /// leaves `b` empty. The caller moves any bytes past `end` it still needs.
    void seal(TableBatch& b, std::size_t end) {
        b.data[end] = ']';
        const std::size_t json_bytes = end + 1;
        CEFD_ASSERT(json_bytes <= max_bytes_);
        const auto gz = gzip_.compress({b.data.get(), json_bytes});
        CEFD_ASSERT(!gz.empty());
        const std::uint32_t rows = b.rows;  // a row being carried over is not counted yet

        SealedBatch sealed;
        sealed.body.assign(gz.begin(), gz.end());  // the one allocation per batch
        sealed.rows = rows;
        sealed.json_bytes = static_cast<std::uint32_t>(json_bytes);
        sealed.first_receive_ns = b.first_receive_ns;
        sealed.last_receive_ns = b.last_receive_ns;
        sealed.created_ns = wall_clock_ns();
        sealed.table = b.table;

        // Counters once per batch, not per row.
        bump(stats_.rows, rows);
        bump(stats_.json_bytes, json_bytes);
        bump(stats_.gzip_bytes, gz.size());
        stats_.size_rows.observe(rows);
        stats_.size_bytes.observe(static_cast<double>(json_bytes));
        b.used = 0;
        b.rows = 0;
        const bool accepted = sink_.accept(std::move(sealed));
        // After the hand-over: a reader that sees this batch counted and the spool empty knows
        // the spool has seen it (cefd check waits on exactly that).
        bump(stats_.batches);
        if (!accepted) {
            bump(stats_.sink_refused);
            bump(stats_.sink_refused_rows, rows);
            CEFD_LOG_EVERY(10, warn, "batch: the spool refused a batch of %u rows (see its counters)", rows);
        }
    }

    void drop_oversize(const Row& row) {
        bump(stats_.oversize_rows);
        CEFD_LOG_EVERY(10, warn,
                       "batch: dropped a row of %zu value bytes: its JSON is over batch.max_bytes (%u)",
                       row.value_bytes(), max_bytes_);
    }

    const BatchConfig config_;
    const std::uint32_t max_bytes_;
    const std::int64_t linger_ns_;
    const std::size_t capacity_;
    BatchSink& sink_;
    BatchStats& stats_;
    GzipCompressor gzip_;
    std::array<TableBatch, 2> batches_;
    std::vector<char> scratch_;  // append_large(): a row whose worst case exceeds the buffer
};

Batcher::Batcher(const BatchConfig& config, BatchSink& sink)
    : impl_(std::make_unique<Impl>(config, sink, stats_)) {}

Batcher::~Batcher() = default;

void Batcher::append(const Row& row) { impl_->append(row); }
void Batcher::seal_if_due(std::int64_t now_ns) { impl_->seal_if_due(now_ns); }
void Batcher::seal_all() { impl_->seal_all(); }

void Batcher::reconfigure_limits(std::uint32_t max_bytes, std::uint32_t linger_ms) {
    impl_->seal_all();
    BatchConfig config = impl_->config();
    config.max_bytes = max_bytes;
    config.linger_ms = linger_ms;
    impl_ = std::make_unique<Impl>(config, impl_->sink(), stats_);
}
const char* Batcher::compressor_name() const noexcept { return impl_->compressor_name(); }

void Batcher::register_metrics(MetricsRegistry& registry, const std::string& labels) const {
    registry.add("batch_rows_total", "Rows encoded into sealed batches.", labels, &stats_.rows);
    registry.add("batch_batches_total", "Batches sealed and handed to the spool.", labels, &stats_.batches);
    registry.add("batch_json_bytes_total", "Uncompressed JSON bytes sealed.", labels, &stats_.json_bytes);
    registry.add("batch_gzip_bytes_total", "gzip bytes sealed.", labels, &stats_.gzip_bytes);
    const std::string sep = labels.empty() ? "" : ",";
    constexpr std::string_view dropped_help =
        "Rows the batcher lost, by reason: oversize (its JSON alone is over batch.max_bytes), spool_refused "
        "(in a sealed batch the spool refused; the spool counted why).";
    registry.add("batch_dropped_rows_total", dropped_help, labels + sep + "reason=\"oversize\"", &stats_.oversize_rows);
    registry.add("batch_dropped_rows_total", dropped_help, labels + sep + "reason=\"spool_refused\"",
                 &stats_.sink_refused_rows);
    registry.add("batch_spool_refused_batches_total", "Sealed batches the spool refused.", labels, &stats_.sink_refused);
    registry.add_histogram("batch_size_rows", "Rows per sealed batch.", labels, &stats_.size_rows);
    registry.add_histogram("batch_size_bytes", "Uncompressed JSON bytes per sealed batch.", labels, &stats_.size_bytes);
}

}  // namespace cefd
