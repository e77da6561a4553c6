// MappedArray<T>: a fixed array of zero-initialised T in its own anonymous mapping, asking the
// kernel for transparent huge pages (MADV_HUGEPAGE; the default THP mode "madvise" grants them
// only on request). For tables read at random on the per-message path: the dedupe table's
// lookups missed the TLB as well as the cache with 4 KiB pages (perf, bench/README.md). The size
// is rounded up to whole 2 MiB pages, so the kernel can back all of it with huge pages. Without
// THP it is a plain zeroed mapping. Allocates only in the constructor.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

namespace cefd {

template <class T>
class MappedArray {
    static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                  "the mapping's zero bytes must be a valid T");

public:
    static constexpr std::size_t huge_page_bytes = std::size_t{2} << 20;

    MappedArray() = default;
    explicit MappedArray(std::size_t count) : count_(count) {
        if (count == 0) return;
        bytes_ = (count * sizeof(T) + huge_page_bytes - 1) & ~(huge_page_bytes - 1);
        // Over-map by one huge page so the array can start on a 2 MiB boundary.
        const std::size_t mapped = bytes_ + huge_page_bytes;
        void* p = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        auto* base = static_cast<std::byte*>(p);
        const std::size_t skip = (huge_page_bytes - reinterpret_cast<std::uintptr_t>(base) % huge_page_bytes) %
                                 huge_page_bytes;
        if (skip != 0) ::munmap(base, skip);
        if (huge_page_bytes - skip != 0) ::munmap(base + skip + bytes_, huge_page_bytes - skip);
        data_ = reinterpret_cast<T*>(base + skip);
        (void)::madvise(data_, bytes_, MADV_HUGEPAGE);  // advice only: EINVAL without THP is fine
    }
    ~MappedArray() { release(); }
    MappedArray(MappedArray&& other) noexcept { *this = std::move(other); }
    MappedArray& operator=(MappedArray&& other) noexcept {
        if (this != &other) {
            release();
            data_ = std::exchange(other.data_, nullptr);
            count_ = std::exchange(other.count_, 0);
            bytes_ = std::exchange(other.bytes_, 0);
        }
        return *this;
    }
    MappedArray(const MappedArray&) = delete;
    MappedArray& operator=(const MappedArray&) = delete;

    [[nodiscard]] std::size_t size() const noexcept { return count_; }
    T& operator[](std::size_t i) noexcept { return data_[i]; }
    const T& operator[](std::size_t i) const noexcept { return data_[i]; }
    [[nodiscard]] std::span<T> span() noexcept { return {data_, count_}; }

private:
    void release() noexcept {
        if (data_ != nullptr) ::munmap(data_, bytes_);
        data_ = nullptr;
    }
    T* data_ = nullptr;
    std::size_t count_ = 0;
    std::size_t bytes_ = 0;
};

}  // namespace cefd
