// MappedArray: zeroed, aligned for huge pages, and owned exactly once across moves.
#include "engine/runtime/mapped_array.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace cefd {
namespace {

struct Slot {
    std::uint64_t a = 0;
    std::int64_t b = 0;
};

TEST(MappedArray, StartsZeroedOnAHugePageBoundaryAndHoldsWhatIsWritten) {
    MappedArray<Slot> table(65'536);
    ASSERT_EQ(table.size(), 65'536U);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(&table[0]) % MappedArray<Slot>::huge_page_bytes, 0U);
    for (std::size_t i = 0; i < table.size(); ++i) {
        ASSERT_EQ(table[i].a, 0U) << i;
        ASSERT_EQ(table[i].b, 0) << i;
    }
    for (std::size_t i = 0; i < table.size(); ++i) table[i] = Slot{i, -static_cast<std::int64_t>(i)};
    EXPECT_EQ(table[65'535].a, 65'535U);
    EXPECT_EQ(table[12'345].b, -12'345);
}

TEST(MappedArray, AMoveHandsOverTheMappingAndLeavesTheSourceEmpty) {
    MappedArray<Slot> first(10);
    first[3].a = 7;
    MappedArray<Slot> second(std::move(first));
    EXPECT_EQ(first.size(), 0U);  // NOLINT(bugprone-use-after-move): the moved-from state is the contract
    ASSERT_EQ(second.size(), 10U);
    EXPECT_EQ(second[3].a, 7U);
    second = MappedArray<Slot>(4);  // the old mapping is released, the new one is zeroed
    ASSERT_EQ(second.size(), 4U);
    EXPECT_EQ(second[3].a, 0U);
    MappedArray<Slot> empty(0);
    EXPECT_EQ(empty.size(), 0U);
}

}  // namespace
}  // namespace cefd
