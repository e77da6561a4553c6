// tools/loadgen/verify.h: counts which stamped events of one run reached the stand-in, and how
// long each took.
//
// Reads the stand-in's JSONL (one row per line) and finds "cefdseq=<run-id>-<n>" in each row
// (first occurrence; it sits in AdditionalExtensions). Events 0 .. expected-1 are looked for:
// delivered = distinct n seen, lost = expected - delivered, duplicated = copies beyond the
// first. Both files are read incrementally while they grow.
//
// Latency: an event stamped with " cefdts=<unix µs>" (its send time) is matched with the
// stand-in's --accept-log, whose lines "<rows> <unix ns>" say when each accepted request was
// stored, in the same order as the rows in --out (both are written under one mutex). Row k of
// --out therefore belongs to the first accept line whose running row total exceeds k. The
// latency of an event is that acceptance time minus its send time, for first copies only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cefd::loadgen {

struct VerifyReport {
    std::uint64_t delivered = 0;
    std::uint64_t lost = 0;
    std::uint64_t duplicated = 0;
    /// Events with both a send time and an acceptance time; the figures below are over them.
    std::uint64_t latency_samples = 0;
    double latency_p50_ms = 0;
    double latency_p99_ms = 0;
    double latency_max_ms = 0;
    /// Rows "accepted" more than 5 ms before they were sent: the accept log is not the rows
    /// file's (one of them is from another stand-in run). Left out of the figures above.
    std::uint64_t latency_mismatched = 0;
};

/// Follows the rows file (and the accept log, if any) across several runs: begin_run() starts
/// counting a new run id, poll() reads what was appended since the last call.
class DeliveryTracker {
public:
    DeliveryTracker(std::string rows_path, std::string accept_path);
    ~DeliveryTracker();
    DeliveryTracker(const DeliveryTracker&) = delete;
    DeliveryTracker& operator=(const DeliveryTracker&) = delete;

    void begin_run(const std::string& run_id, std::uint64_t expected);
    /// Lowers the expected count once the run knows what it sent (no event past it exists).
    void set_expected(std::uint64_t expected) { copies_.resize(std::min<std::size_t>(copies_.size(), expected)); }
    /// Reads new bytes; returns true if either file grew.
    bool poll();
    [[nodiscard]] bool complete() const noexcept { return delivered_ == copies_.size(); }
    [[nodiscard]] VerifyReport report() const;
    /// Mean length of this run's rows in --out (first copies), plus one for the JSON comma.
    [[nodiscard]] double run_row_bytes_mean() const noexcept {
        return delivered_ == 0 ? 0 : static_cast<double>(row_bytes_) / static_cast<double>(delivered_) + 1;
    }

private:
    void add_row(std::string_view row);
    /// Reads `fd` (opening `path` if needed) and calls `line` for every complete line.
    template <class OnLine>
    bool read_lines(int& fd, const std::string& path, std::string& pending, OnLine&& line);

    std::string rows_path_;
    std::string accept_path_;
    int rows_fd_ = -1;
    int accept_fd_ = -1;
    std::string rows_pending_;
    std::string accept_pending_;
    std::vector<char> chunk_;
    std::uint64_t row_index_ = 0;                                    // rows read so far, all runs
    std::vector<std::pair<std::uint64_t, std::int64_t>> accepted_;  // (row total after, unix ns)

    std::string needle_;
    std::vector<std::uint32_t> copies_;
    std::uint64_t delivered_ = 0;
    std::uint64_t duplicated_ = 0;
    std::uint64_t row_bytes_ = 0;
    std::vector<std::pair<std::uint64_t, std::int64_t>> sent_;  // (row index, send unix µs)
};

/// Reads `path` until every event is seen, or the file has not grown for `idle_wait_s`
/// seconds (0: read what is there once). `accept_path` may be empty (no latency).
VerifyReport verify_delivery(const std::string& path, const std::string& run_id, std::uint64_t expected,
                             double idle_wait_s, const std::string& accept_path = {});

}  // namespace cefd::loadgen
