// tests/unit/receive/test_lane.h: a Receiver, its ring and its thread, for the receive tests.
// drain() moves what the ring holds into `got`; wait_for() drains until `count` messages arrived.
#pragma once

#include <pthread.h>
#include <time.h>

#include <chrono>
#include <cstdint>
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
    Lane(const ReceiveConfig& config, unsigned lane, std::size_t ring_bytes = 1 << 20, unsigned lanes = 1)
        : ring_(ring_bytes) {
        auto receiver = Receiver::open(config, lane, ring_, lanes);
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
    /// Asks the receive thread to stop without waiting (stop() joins it: the stop's drain runs between).
    void request_stop() { thread_.request_stop(); }
    void stop() {
        if (thread_.joinable()) {
            thread_.request_stop();
            thread_.join();
        }
    }
    std::size_t drain() {
        std::size_t n = 0;
        for (auto record = ring_.front(); !record.empty(); record = ring_.front()) {
            const MessageRecord message = read_message_record(record);
            got.push_back(Received{message.meta, std::string(message.bytes)});
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
    /// CPU time the receive thread has used so far (its thread CPU clock), in nanoseconds.
    std::int64_t receive_thread_cpu_ns() {
        clockid_t clock{};
        if (::pthread_getcpuclockid(thread_.native_handle(), &clock) != 0) return -1;
        timespec ts{};
        ::clock_gettime(clock, &ts);
        return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
    }

    std::vector<Received> got;
    Error error;

private:
    ByteRing ring_;
    std::unique_ptr<Receiver> receiver_;
    std::jthread thread_;
};

}  // namespace cefd::test
