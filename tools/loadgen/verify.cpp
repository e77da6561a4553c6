#include "tools/loadgen/verify.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <thread>

namespace cefd::loadgen {
namespace {

/// The digits at `at` in `text` (at most 20); false if there are none or more follow.
bool read_number(std::string_view text, std::size_t at, std::uint64_t& out) {
    const std::size_t first = at;
    out = 0;
    while (at < text.size() && at - first < 20 && text[at] >= '0' && text[at] <= '9') {
        out = out * 10 + static_cast<std::uint64_t>(text[at] - '0');
        ++at;
    }
    return at != first && !(at < text.size() && text[at] >= '0' && text[at] <= '9');
}

double percentile(std::vector<double>& values, double fraction) {
    const auto index = static_cast<std::size_t>(fraction * static_cast<double>(values.size() - 1) + 0.5);
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index), values.end());
    return values[index];
}

}  // namespace

DeliveryTracker::DeliveryTracker(std::string rows_path, std::string accept_path)
    : rows_path_(std::move(rows_path)), accept_path_(std::move(accept_path)), chunk_(1 << 20) {}

DeliveryTracker::~DeliveryTracker() {
    if (rows_fd_ >= 0) ::close(rows_fd_);
    if (accept_fd_ >= 0) ::close(accept_fd_);
}

void DeliveryTracker::begin_run(const std::string& run_id, std::uint64_t expected) {
    needle_ = "cefdseq=" + run_id + "-";
    copies_.assign(expected, 0);
    delivered_ = 0;
    duplicated_ = 0;
    row_bytes_ = 0;
    sent_.clear();
}

void DeliveryTracker::add_row(std::string_view row) {
    const std::uint64_t index = row_index_++;
    const std::size_t at = row.find(needle_);
    if (at == std::string_view::npos) return;
    std::uint64_t sequence = 0;
    if (!read_number(row, at + needle_.size(), sequence)) return;
    if (sequence >= copies_.size()) return;  // not an event of this run's range
    std::uint32_t& copies = copies_[sequence];
    if (copies++ != 0) {
        ++duplicated_;
        return;
    }
    ++delivered_;
    row_bytes_ += row.size();
    // The send time follows the sequence stamp: "cefdseq=R-N;cefdts=T" in AdditionalExtensions
    // (cefd joins extensions with ';'), "cefdseq=R-N cefdts=T" elsewhere.
    const std::size_t time_at = row.find("cefdts=", at + needle_.size());
    std::uint64_t send_us = 0;
    if (time_at != std::string_view::npos && time_at - at < needle_.size() + 24 &&
        read_number(row, time_at + 7, send_us)) {
        sent_.emplace_back(index, static_cast<std::int64_t>(send_us));
    }
}

template <class OnLine>
bool DeliveryTracker::read_lines(int& fd, const std::string& path, std::string& pending, OnLine&& line) {
    if (fd < 0 && !path.empty()) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // may not exist yet
    bool grew = false;
    while (fd >= 0) {
        const ssize_t got = ::read(fd, chunk_.data(), chunk_.size());
        if (got <= 0) break;
        grew = true;
        std::string_view data(chunk_.data(), static_cast<std::size_t>(got));
        while (!data.empty()) {
            const std::size_t newline = data.find('\n');
            if (newline == std::string_view::npos) {
                pending.append(data);  // a line whose newline has not been written yet
                break;
            }
            if (pending.empty()) {
                line(data.substr(0, newline));
            } else {
                pending.append(data.substr(0, newline));
                line(std::string_view(pending));
                pending.clear();
            }
            data.remove_prefix(newline + 1);
        }
    }
    return grew;
}

bool DeliveryTracker::poll() {
    const bool rows = read_lines(rows_fd_, rows_path_, rows_pending_, [this](std::string_view row) { add_row(row); });
    const bool accepts = read_lines(accept_fd_, accept_path_, accept_pending_, [this](std::string_view line) {
        std::uint64_t count = 0;
        std::uint64_t ns = 0;
        const std::size_t space = line.find(' ');
        if (space == std::string_view::npos || !read_number(line, 0, count) || !read_number(line, space + 1, ns)) return;
        const std::uint64_t total = (accepted_.empty() ? 0 : accepted_.back().first) + count;
        accepted_.emplace_back(total, static_cast<std::int64_t>(ns));
    });
    return rows || accepts;
}

VerifyReport DeliveryTracker::report() const {
    VerifyReport report{.delivered = delivered_, .lost = copies_.size() - delivered_, .duplicated = duplicated_};
    std::vector<double> latencies_ms;
    latencies_ms.reserve(sent_.size());
    for (const auto& [row, send_us] : sent_) {
        // The first request whose running total passes this row stored it.
        const auto request = std::upper_bound(accepted_.begin(), accepted_.end(), row,
                                              [](std::uint64_t r, const auto& entry) { return r < entry.first; });
        if (request == accepted_.end()) continue;  // its accept line is not written yet
        const double latency_ms = static_cast<double>(request->second / 1000 - send_us) / 1000.0;
        // The same clock on the same machine: a little below 0 is rounding; far below, the row was
        // matched to another run's acceptance.
        if (latency_ms < -5.0) {
            ++report.latency_mismatched;
            continue;
        }
        latencies_ms.push_back(std::max(0.0, latency_ms));
    }
    report.latency_samples = latencies_ms.size();
    if (!latencies_ms.empty()) {
        report.latency_max_ms = *std::max_element(latencies_ms.begin(), latencies_ms.end());
        report.latency_p99_ms = percentile(latencies_ms, 0.99);
        report.latency_p50_ms = percentile(latencies_ms, 0.50);
    }
    return report;
}

VerifyReport verify_delivery(const std::string& path, const std::string& run_id, std::uint64_t expected,
                             double idle_wait_s, const std::string& accept_path) {
    DeliveryTracker tracker(path, accept_path);
    tracker.begin_run(run_id, expected);
    auto last_growth = std::chrono::steady_clock::now();
    const auto idle_limit = std::chrono::duration<double>(idle_wait_s);
    while (true) {
        const bool grew = tracker.poll();
        const auto now = std::chrono::steady_clock::now();
        if (grew) last_growth = now;
        if (tracker.complete()) {
            // The accept line of the last request is written just after its rows.
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            tracker.poll();
            break;
        }
        if (now - last_growth >= idle_limit) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling a file, not a test
    }
    return tracker.report();
}

}  // namespace cefd::loadgen
