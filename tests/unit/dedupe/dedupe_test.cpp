#include "stages/dedupe/dedupe.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

namespace cefd {
namespace {

constexpr std::int64_t ms = 1'000'000;

SourceAddress ipv4(const char* text, std::uint16_t port = 514) {
    SourceAddress a;
    a.family = AF_INET;
    a.port = port;
    inet_pton(AF_INET, text, a.addr);
    return a;
}

TEST(Deduper, SuppressesARepeatFromTheSameSenderWithinTheWindow) {
    Deduper d(DedupeConfig{.window_ms = 1000, .max_entries = 1024});
    const auto src = ipv4("192.0.2.1");
    EXPECT_FALSE(d.is_repeat(src, "host CEF:0|a|b|c|d|e|1|x=1", 0));
    EXPECT_TRUE(d.is_repeat(src, "host CEF:0|a|b|c|d|e|1|x=1", 500 * ms));
    EXPECT_EQ(d.stats().deduplicated.load(), 1U);
}

TEST(Deduper, KeyThenIsRepeatDecidesAsTheOneStepCall) {
    Deduper one(DedupeConfig{.window_ms = 1000, .max_entries = 1024});
    Deduper two(DedupeConfig{.window_ms = 1000, .max_entries = 1024});
    const auto src = ipv4("192.0.2.1");
    const std::string texts[] = {"a", "b", "a", "c", "b", "a"};
    std::int64_t now = 0;
    for (const std::string& text : texts) {
        now += 100 * ms;
        const std::uint64_t key = two.key(src, text);
        EXPECT_NE(key, 0U);
        EXPECT_EQ(one.is_repeat(src, text, now), two.is_repeat(key, now)) << text;
    }
    EXPECT_EQ(two.stats().deduplicated.load(), 3U);
    Deduper off(DedupeConfig{.window_ms = 0, .max_entries = 1024});
    EXPECT_EQ(off.key(src, "a"), 0U);
    EXPECT_FALSE(off.is_repeat(off.key(src, "a"), 0));
    EXPECT_FALSE(off.is_repeat(off.key(src, "a"), 1));
}

TEST(Deduper, IgnoresTheSourcePort) {
    Deduper d(DedupeConfig{.window_ms = 1000, .max_entries = 1024});
    EXPECT_FALSE(d.is_repeat(ipv4("192.0.2.1", 40000), "m", 0));
    EXPECT_TRUE(d.is_repeat(ipv4("192.0.2.1", 40001), "m", 1));
}

TEST(Deduper, LetsTheSameTextFromAnotherSenderThrough) {
    Deduper d(DedupeConfig{.window_ms = 1000, .max_entries = 1024});
    EXPECT_FALSE(d.is_repeat(ipv4("192.0.2.1"), "m", 0));
    EXPECT_FALSE(d.is_repeat(ipv4("192.0.2.2"), "m", 1));
    SourceAddress v6;
    v6.family = AF_INET6;
    EXPECT_FALSE(d.is_repeat(v6, "m", 2));
}

TEST(Deduper, LetsDifferentTextThrough) {
    Deduper d(DedupeConfig{.window_ms = 1000, .max_entries = 1024});
    const auto src = ipv4("192.0.2.1");
    EXPECT_FALSE(d.is_repeat(src, "x=1", 0));
    EXPECT_FALSE(d.is_repeat(src, "x=2", 1));
    EXPECT_FALSE(d.is_repeat(src, "x=1 ", 2));
    EXPECT_EQ(d.stats().deduplicated.load(), 0U);
}

// SIGHUP: a new window applies at once and keeps what the table remembers; a new size starts an
// empty table (a repeat may pass once, never an event be lost); window 0 turns dedupe off.
TEST(Deduper, ReconfigureChangesTheWindowAndTheTableSize) {
    Deduper d(DedupeConfig{.window_ms = 1000, .max_entries = 1024});
    const auto src = ipv4("192.0.2.1");
    EXPECT_FALSE(d.is_repeat(src, "m", 0));
    d.reconfigure(DedupeConfig{.window_ms = 5000, .max_entries = 1024});
    EXPECT_TRUE(d.is_repeat(src, "m", 3000 * ms)) << "same size: the table is kept, the longer window applies";
    d.reconfigure(DedupeConfig{.window_ms = 5000, .max_entries = 4096});
    EXPECT_FALSE(d.is_repeat(src, "m", 3500 * ms)) << "new size: an empty table";
    EXPECT_TRUE(d.is_repeat(src, "m", 3600 * ms));
    d.reconfigure(DedupeConfig{.window_ms = 0, .max_entries = 4096});
    EXPECT_FALSE(d.is_repeat(src, "m", 3800 * ms)) << "window 0: off";
    EXPECT_FALSE(d.is_repeat(src, "m", 3900 * ms));
    EXPECT_EQ(d.stats().deduplicated.load(), 2U);
}

TEST(Deduper, ForgetsAfterTheWindowAndRestartsIt) {
    Deduper d(DedupeConfig{.window_ms = 1000, .max_entries = 1024});
    const auto src = ipv4("192.0.2.1");
    EXPECT_FALSE(d.is_repeat(src, "m", 0));
    EXPECT_TRUE(d.is_repeat(src, "m", 999 * ms));
    EXPECT_FALSE(d.is_repeat(src, "m", 1000 * ms));  // window runs from the first sighting
    EXPECT_TRUE(d.is_repeat(src, "m", 1500 * ms));
}

TEST(Deduper, ZeroWindowTurnsTheStageOff) {
    Deduper d(DedupeConfig{.window_ms = 0, .max_entries = 1024});
    const auto src = ipv4("192.0.2.1");
    EXPECT_FALSE(d.is_repeat(src, "m", 0));
    EXPECT_FALSE(d.is_repeat(src, "m", 1));
}

TEST(Deduper, StaysBoundedAndNeverSuppressesDistinctMessagesWhenFull) {
    Deduper d(DedupeConfig{.window_ms = 60'000, .max_entries = 1024});
    const auto src = ipv4("192.0.2.1");
    // Ten times more distinct messages than entries: none may be called a repeat.
    for (int i = 0; i < 10'240; ++i) ASSERT_FALSE(d.is_repeat(src, "message " + std::to_string(i), i));
    EXPECT_EQ(d.stats().deduplicated.load(), 0U);
    // The most recent ones are still remembered.
    EXPECT_TRUE(d.is_repeat(src, "message 10239", 20'000));
}

TEST(Deduper, RegistersItsCounter) {
    Deduper d(DedupeConfig{});
    MetricsRegistry registry;
    d.register_metrics(registry, "lane=\"0\"");
    (void)d.is_repeat(ipv4("192.0.2.1"), "m", 0);
    (void)d.is_repeat(ipv4("192.0.2.1"), "m", 1);
    EXPECT_EQ(registry.value("dedupe_deduplicated_total"), 1);
}

TEST(DedupeConfig, RejectsNonPowerOfTwoAndOutOfRangeValues) {
    ConfigErrors errors;
    DedupeConfig{.window_ms = 10'000, .max_entries = 65'536}.validate(errors);
    EXPECT_TRUE(errors.empty());
    DedupeConfig{.window_ms = 4'000'000, .max_entries = 3000}.validate(errors);
    EXPECT_EQ(errors.list().size(), 2U);
}

}  // namespace
}  // namespace cefd
