// engine/queue/byte_ring.h: the per-lane ring buffer between a receiver and its worker.
//
// A single-producer single-consumer ring of variable-length records, allocated once at start-up
// and never grown. The receiver reserve()s space, writes a record (MessageMeta + message bytes)
// straight into it and commit()s; the worker reads records in place with front() and pop()s each
// one once the row is encoded. So a message's bytes are copied once, socket -> ring, and nothing
// on this path allocates.
//
// Layout: every record is an 8-byte header {u32 length, u32 kind} followed by `length` bytes,
// padded to 8. A record never wraps: when it does not fit before the end, the producer writes a
// `padding` record over the tail end and starts again at offset 0.
//
// Full: reserve() returns an empty span. The caller decides (UDP: drop and count `ring_full`;
// TCP: stop reading, which is backpressure). Records are limited to capacity/4 so that a free
// ring always takes one.
//
// Threads: exactly one producer and one consumer. head_ (consumer) and tail_ (producer) are on
// separate cache lines so a push does not invalidate the line the consumer polls.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

#include "engine/log.h"
#include "engine/queue/doorbell.h"

namespace cefd {

class ByteRing {
public:
    explicit ByteRing(std::size_t capacity_bytes)
        : capacity_(capacity_bytes),
          mask_(capacity_bytes - 1),
          data_(static_cast<std::byte*>(::operator new(capacity_bytes, std::align_val_t{64}))) {
        CEFD_ASSERT(std::has_single_bit(capacity_bytes) && capacity_bytes >= 4096);
    }
    ~ByteRing() { ::operator delete(data_, std::align_val_t{64}); }
    ByteRing(const ByteRing&) = delete;
    ByteRing& operator=(const ByteRing&) = delete;

    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    /// Ring bytes a record of `bytes` takes: its header and alignment (not the skip a record
    /// that does not fit before the end of the ring leaves behind: up to one more record).
    static constexpr std::size_t footprint(std::size_t bytes) noexcept { return header_bytes + round_up(bytes); }
    [[nodiscard]] std::size_t max_record_bytes() const noexcept { return capacity_ / 4 - header_bytes; }

    // ---- producer ----

    /// Room for a record of up to `bytes` bytes, or an empty span when the ring is full.
    std::span<std::byte> reserve(std::size_t bytes) noexcept {
        CEFD_ASSERT(bytes <= max_record_bytes());
        const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
        const std::size_t need = header_bytes + round_up(bytes);
        const std::size_t offset = tail & mask_;
        const std::size_t until_end = capacity_ - offset;
        const std::size_t skip = (need > until_end) ? until_end : 0;  // padding to wrap
        if (!has_room(tail, skip + need)) return {};
        if (skip != 0) {
            write_header(offset, static_cast<std::uint32_t>(until_end - header_bytes), kind_padding);
            reserved_at_ = tail + skip;
        } else {
            reserved_at_ = tail;
        }
        return {data_ + ((reserved_at_ & mask_) + header_bytes), bytes};
    }

    /// Publishes the last reservation with its final length (<= what was reserved).
    void commit(std::size_t bytes) noexcept {
        write_header(reserved_at_ & mask_, static_cast<std::uint32_t>(bytes), kind_data);
        tail_.store(reserved_at_ + header_bytes + round_up(bytes), std::memory_order_release);
    }

    /// Wakes the consumer if it sleeps. Call once per batch of commits, not per record.
    void notify() noexcept { doorbell_.ring(); }

    // ---- consumer ----

    /// The oldest record, or an empty span when there is none.
    std::span<const std::byte> front() noexcept {
        for (;;) {
            const std::uint64_t head = head_.load(std::memory_order_relaxed);
            if (head == tail_cache_) {
                tail_cache_ = tail_.load(std::memory_order_acquire);
                if (head == tail_cache_) return {};
            }
            std::uint32_t length = 0;
            std::uint32_t kind = 0;
            read_header(head & mask_, length, kind);
            if (kind == kind_padding) {
                head_.store(head + header_bytes + length, std::memory_order_release);
                continue;
            }
            front_bytes_ = header_bytes + round_up(length);
            return {data_ + (head & mask_) + header_bytes, length};
        }
    }

    /// Releases the record returned by the last front().
    void pop() noexcept {
        head_.store(head_.load(std::memory_order_relaxed) + front_bytes_, std::memory_order_release);
    }

    /// Sleeps until a record may be available or `timeout_ns` passes. Returns at once if one is.
    void wait_for_data(std::int64_t timeout_ns) noexcept {
        doorbell_.arm();
        if (front().empty()) doorbell_.wait(timeout_ns);
        doorbell_.disarm();
    }

    /// Bytes in use (approximate from any thread; for metrics), always within [0, capacity].
    /// head first: both only grow and head never passes tail, so a tail read after it is at
    /// least as far; tail read first could be behind a head the worker moved meanwhile, and the
    /// difference would wrap to ~1.8e19.
    [[nodiscard]] std::size_t used_bytes() const noexcept {
        const std::uint64_t head = head_.load(std::memory_order_acquire);
        const std::uint64_t tail = tail_.load(std::memory_order_acquire);
        return static_cast<std::size_t>(std::min<std::uint64_t>(tail >= head ? tail - head : 0, capacity_));
    }

private:
    static constexpr std::size_t header_bytes = 8;
    static constexpr std::uint32_t kind_data = 0;
    static constexpr std::uint32_t kind_padding = 1;
    static constexpr std::size_t round_up(std::size_t n) noexcept { return (n + 7) & ~std::size_t{7}; }

    bool has_room(std::uint64_t tail, std::size_t need) noexcept {
        if (tail + need - head_cache_ <= capacity_) return true;
        head_cache_ = head_.load(std::memory_order_acquire);
        return tail + need - head_cache_ <= capacity_;
    }
    void write_header(std::size_t offset, std::uint32_t length, std::uint32_t kind) noexcept {
        std::memcpy(data_ + offset, &length, 4);
        std::memcpy(data_ + offset + 4, &kind, 4);
    }
    void read_header(std::size_t offset, std::uint32_t& length, std::uint32_t& kind) const noexcept {
        std::memcpy(&length, data_ + offset, 4);
        std::memcpy(&kind, data_ + offset + 4, 4);
    }

    const std::size_t capacity_;
    const std::size_t mask_;
    std::byte* const data_;

    // Consumer side.
    alignas(64) std::atomic<std::uint64_t> head_{0};
    std::uint64_t tail_cache_ = 0;
    std::size_t front_bytes_ = 0;
    // Producer side.
    alignas(64) std::atomic<std::uint64_t> tail_{0};
    std::uint64_t head_cache_ = 0;
    std::uint64_t reserved_at_ = 0;
    alignas(64) Doorbell doorbell_;
};

}  // namespace cefd
