// tests/support/counting_new.h: replaces global operator new/delete (every form) with malloc/free
// plus a call to cefd_test_on_allocation(), which the including test defines to count what it
// wants (all allocations, one thread's, while a flag is set). For the tests that prove a path
// does not allocate per message.
//
// Include it in exactly one .cpp of a test binary. Every form is replaced, so no allocation can
// reach a sanitizer's operator new while the matching delete is this one.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <new>

/// Defined by the test that includes this header. Called on every operator new, any thread.
void cefd_test_on_allocation() noexcept;

namespace cefd::test::counting_new {

inline void* allocate(std::size_t size) {
    cefd_test_on_allocation();
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}

inline void* allocate_aligned(std::size_t size, std::align_val_t align) {
    cefd_test_on_allocation();
    void* p = nullptr;
    const std::size_t alignment = std::max(static_cast<std::size_t>(align), sizeof(void*));
    if (::posix_memalign(&p, alignment, size == 0 ? 1 : size) == 0) return p;
    throw std::bad_alloc();
}

inline void* allocate_or_null(std::size_t size) noexcept {
    try {
        return allocate(size);
    } catch (...) {
        return nullptr;
    }
}

}  // namespace cefd::test::counting_new

// GCC 12 inlines these into callers and then reports malloc/free as a mismatched pair
// (-Wmismatched-new-delete); they are a matched pair by construction.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) { return cefd::test::counting_new::allocate(size); }
void* operator new[](std::size_t size) { return cefd::test::counting_new::allocate(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return cefd::test::counting_new::allocate_or_null(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return cefd::test::counting_new::allocate_or_null(size); }
void* operator new(std::size_t size, std::align_val_t a) { return cefd::test::counting_new::allocate_aligned(size, a); }
void* operator new[](std::size_t size, std::align_val_t a) { return cefd::test::counting_new::allocate_aligned(size, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
