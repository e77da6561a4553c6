// engine/queue/doorbell.h: lets one consumer thread sleep until a producer has published work,
// without a syscall on the producer's side while the consumer is awake.
//
// Protocol (a Dekker-style handshake on a futex word):
//   consumer: arm(); if (still empty) wait(timeout); disarm();
//   producer: publish (release store); ring();   // ring() is one fence + one load when idle
// Each side puts a seq_cst fence between its store and its load (consumer: arm, then the
// re-check; producer: the publish, then the look at the bell), so by the fence rule of the C++
// memory model either the consumer sees the new work on its re-check or the producer sees the
// armed bell and wakes it. (A seq_cst store alone, as arm() had, does not order a later acquire
// load in the model, though x86 and ARM do.) One producer, one consumer.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <ctime>

namespace cefd {

class Doorbell {
public:
    /// Consumer: announce the intention to sleep. Re-check for work after this.
    void arm() noexcept {
        state_.store(1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }
    void disarm() noexcept { state_.store(0, std::memory_order_relaxed); }

    /// Consumer: sleep until rung or `timeout_ns` passes (spurious wake-ups are fine).
    void wait(std::int64_t timeout_ns) noexcept {
        timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000),
                    static_cast<long>(timeout_ns % 1'000'000'000)};
        syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&state_), FUTEX_WAIT_PRIVATE, 1, &ts,
                nullptr, 0);
    }

    /// Producer: wake the consumer if it is (about to be) asleep.
    void ring() noexcept {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (state_.load(std::memory_order_relaxed) == 1) {
            state_.store(0, std::memory_order_relaxed);
            syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&state_), FUTEX_WAKE_PRIVATE, 1,
                    nullptr, nullptr, 0);
        }
    }

private:
    static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
    std::atomic<std::uint32_t> state_{0};
};

}  // namespace cefd
