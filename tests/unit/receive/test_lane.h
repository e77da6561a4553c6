// tests/unit/receive/test_lane.h: a Receiver, its ring and its thread, for the receive tests.
// drain() moves what the ring holds into `got`; wait_for() drains until `count` messages arrived.
#pragma once

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/queue/byte_ring.h"
#include "engine/record.h"
#include "stages/receive/receive.h"
#include "tests/support/support.h"

namespace cefd::test {

struct Received {
    MessageMeta meta;
    std::string bytes;
};

// A Receiver, its ring and its thread. drain() moves what the ring holds into `got`.
class Lane {
public:
    Lane(const ReceiveConfig& config, unsigned lane, std::size_t ring_bytes = 1 << 20)
        : ring_(ring_bytes) {
        auto receiver = Receiver::open(config, lane, ring_);
        if (!receiver) {
            error = receiver.error();
            return;
        }
        receiver_ = std::move(receiver).value();
    }
    ~Lane() { stop(); }

    void start() {
        thread_ = std::jthread([this](std::stop_token stop) { receiver_->run(stop); });
    }
    void stop() {
        if (thread_.joinable()) {
            thread_.request_stop();
            thread_.join();
        }
    }
    std::size_t drain() {
        std::size_t n = 0;
        for (auto record = ring_.front(); !record.empty(); record = ring_.front()) {
            Received r;
            std::memcpy(&r.meta, record.data(), sizeof(MessageMeta));
            r.bytes.assign(reinterpret_cast<const char*>(record.data()) + sizeof(MessageMeta),
                           r.meta.length);
            got.push_back(std::move(r));
            ring_.pop();
            ++n;
        }
        return n;
    }
    bool wait_for(std::size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        return wait_until(timeout, [&] {
            drain();
            return got.size() >= count;
        });
    }

    [[nodiscard]] bool ok() const { return receiver_ != nullptr; }
    Receiver& receiver() { return *receiver_; }
    const ReceiveStats& stats() const { return receiver_->stats(); }
    ByteRing& ring() { return ring_; }

    std::vector<Received> got;
    Error error;

private:
    ByteRing ring_;
    std::unique_ptr<Receiver> receiver_;
    std::jthread thread_;
};

}  // namespace cefd::test
