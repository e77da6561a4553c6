// engine/clock.h: the UTC text form cefd writes outside the rows.
#include "engine/clock.h"

#include <gtest/gtest.h>

namespace cefd {
namespace {

TEST(Clock, Iso8601IsUtcToTheSecond) {
    EXPECT_EQ(utc_iso8601(0), "1970-01-01T00:00:00Z");
    EXPECT_EQ(utc_iso8601(951'827'696), "2000-02-29T12:34:56Z");  // a leap day
    EXPECT_EQ(utc_iso8601(1'764'404'901), "2025-11-29T08:28:21Z");
    // The wall clock's seconds give the same text as time(): the two clocks agree on the epoch.
    const std::time_t now = std::time(nullptr);
    const std::string text = utc_iso8601(static_cast<std::time_t>(wall_clock_ns() / 1'000'000'000));
    EXPECT_TRUE(text == utc_iso8601(now) || text == utc_iso8601(now + 1)) << text;
}

}  // namespace
}  // namespace cefd
