// tests/unit/send/test_source.h: an in-memory BatchSource for the sender's tests, and helpers
// that build real gzip batches of rows the stand-in accepts.
#pragma once

#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "engine/batch_types.h"
#include "stages/send/body.h"

namespace cefd::test {

class MemorySource final : public BatchSource {
public:
    void add(SealedBatch batch) {
        std::lock_guard lock(mutex_);
        queue_.push_back(SpooledBatch{.id = next_id_++, .batch = std::move(batch)});
    }
    std::optional<SpooledBatch> next(std::int64_t timeout_ns) override {
        (void)timeout_ns;  // the tests add every batch up front, so waiting would not help
        std::lock_guard lock(mutex_);
        if (queue_.empty()) return std::nullopt;
        SpooledBatch b = std::move(queue_.front());
        queue_.pop_front();
        handed_out_.insert(b.id);
        return b;
    }
    void ack(std::uint64_t id) override {
        std::lock_guard lock(mutex_);
        if (handed_out_.erase(id) != 1) ++bad_acks_;
        acked_.push_back(id);
    }
    void release(SpooledBatch&& batch) override {
        std::lock_guard lock(mutex_);
        handed_out_.erase(batch.id);
        ++released_;
        queue_.push_front(std::move(batch));
    }
    [[nodiscard]] std::size_t pending() const override {
        std::lock_guard lock(mutex_);
        return queue_.size() + handed_out_.size();
    }
    std::size_t acked() const {
        std::lock_guard lock(mutex_);
        return acked_.size();
    }
    std::size_t released() const {
        std::lock_guard lock(mutex_);
        return released_;
    }
    std::size_t bad_acks() const {
        std::lock_guard lock(mutex_);
        return bad_acks_;
    }

private:
    mutable std::mutex mutex_;
    std::deque<SpooledBatch> queue_;
    std::set<std::uint64_t> handed_out_;
    std::vector<std::uint64_t> acked_;
    std::size_t released_ = 0;
    std::size_t bad_acks_ = 0;
    std::uint64_t next_id_ = 1;
};

/// A batch of `rows` CommonSecurityLog rows; row i carries "<tag>-<i>" in ExtID so a test can
/// check that every row arrived.
inline SealedBatch make_batch(const std::string& tag, std::uint32_t rows, std::size_t pad_bytes = 0) {
    std::string json = "[";
    const std::string pad(pad_bytes, 'p');
    for (std::uint32_t i = 0; i < rows; ++i) {
        if (i > 0) json += ',';
        json += R"({"TimeGenerated":"2026-11-29T08:28:21.123456Z","DeviceVendor":"Darktrace","DeviceProduct":"AI Analyst","ExtID":")" +
                tag + "-" + std::to_string(i) + R"(","Message":"a \"quoted\", bracketed ] {message} )" + pad +
                R"(","DestinationPort":443})";
    }
    json += ']';
    SealedBatch batch;
    batch.body = gzip_body(json);
    batch.rows = rows;
    batch.json_bytes = static_cast<std::uint32_t>(json.size());
    return batch;
}

}  // namespace cefd::test
