// A disk whose fdatasync fails while writes into the page cache still succeed (EIO from a dying
// device, or a thin-provisioned volume out of space). The spool must keep saying so
// (spool_write_failing, and so /readyz) until an fdatasync succeeds again.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "stages/spool/spool.h"
#include "tests/support/failing_sync.h"
#include "tests/support/support.h"
#include "tests/unit/spool/spool_test_util.h"

namespace cefd::test {
namespace {

std::unique_ptr<Spool> open_spool(const SpoolConfig& config) {
    auto spool = Spool::open(config);
    if (!spool) ADD_FAILURE() << "open failed: " << spool.error().describe();
    return spool ? std::move(spool).value() : nullptr;
}

// Polls for up to 5 s; the fsync thread runs every fsync_interval_ms.
template <typename Predicate>
bool eventually(Predicate predicate) {
    for (int i = 0; i < 1000; ++i) {
        if (predicate()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return predicate();
}

TEST(SpoolSyncErrors, AFailedIntervalSyncStaysVisibleUntilASyncSucceeds) {
    TempDir tmp;
    SpoolConfig config = small_config(tmp.path());
    config.segment_bytes = 1 << 20;
    config.fsync = SpoolConfig::Fsync::interval;
    config.fsync_interval_ms = 10;
    auto spool = open_spool(config);
    ASSERT_NE(spool, nullptr);
    {
        const failing_sync::Failing failing;
        ASSERT_TRUE(spool->accept(make_batch(1)));
        ASSERT_TRUE(eventually([&] { return spool->write_failing(); })) << "the fsync thread saw no EIO";
        EXPECT_GT(read(spool->stats().write_errors), 0U);
        // This write reaches the page cache and succeeds; the disk is no better for it.
        ASSERT_TRUE(spool->accept(make_batch(2)));
        EXPECT_TRUE(spool->write_failing()) << "a page-cache write cleared a failed fdatasync";
        // Still failing after the next background sync of that write.
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        EXPECT_TRUE(spool->write_failing());
    }
    // The disk recovers: the next write is synced, and only that clears the alarm.
    ASSERT_TRUE(spool->accept(make_batch(3)));
    EXPECT_TRUE(eventually([&] { return !spool->write_failing(); })) << "a good fdatasync did not clear it";
    // Nothing stored was lost on the way: all three batches come back.
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        auto batch = spool->next(1'000'000'000);
        ASSERT_TRUE(batch.has_value());
        EXPECT_EQ(batch->batch.body, make_batch(seed).body);
        spool->ack(batch->id);
    }
}

TEST(SpoolSyncErrors, AFailedSyncOfAFullSegmentIsCountedAndShown) {
    TempDir tmp;
    SpoolConfig config = small_config(tmp.path());  // 4 KiB segments: a 2 KiB batch fills one
    config.fsync = SpoolConfig::Fsync::interval;
    config.fsync_interval_ms = 60'000;  // only the sync at rotation runs in this test
    auto spool = open_spool(config);
    ASSERT_NE(spool, nullptr);
    const failing_sync::Failing failing;
    ASSERT_TRUE(spool->accept(make_batch(1, 3000)));
    EXPECT_FALSE(spool->write_failing());
    const auto errors = read(spool->stats().write_errors);
    ASSERT_TRUE(spool->accept(make_batch(2, 3000)));  // starts a segment: syncs the full one
    EXPECT_GT(read(spool->stats().write_errors), errors) << "the full segment's failed fdatasync went uncounted";
    EXPECT_TRUE(spool->write_failing());
}

// A new segment's directory entry is durable only once the directory is fsynced. That fsync's
// result was ignored: a failing directory sync left spool_write_failing (and /readyz) green, and
// nothing retried it, so a crash could lose the whole segment. Found in review.
TEST(SpoolSyncErrors, AFailedDirectorySyncStaysVisibleUntilARetrySucceeds) {
    TempDir tmp;
    SpoolConfig config = small_config(tmp.path());  // 4 KiB segments: a 3 KB batch fills one
    config.fsync = SpoolConfig::Fsync::interval;
    config.fsync_interval_ms = 10;
    auto spool = open_spool(config);
    ASSERT_NE(spool, nullptr);
    {
        const failing_sync::FailingDirectorySync failing;
        ASSERT_TRUE(spool->accept(make_batch(1, 3000)));
        const auto errors = read(spool->stats().write_errors);
        ASSERT_TRUE(spool->accept(make_batch(2, 3000)));  // a new segment: the directory is synced
        EXPECT_GT(read(spool->stats().write_errors), errors) << "the failed directory fsync went uncounted";
        EXPECT_TRUE(spool->write_failing());
        // The interval thread's file syncs succeed meanwhile; the directory is still not synced.
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        EXPECT_TRUE(spool->write_failing()) << "good file syncs cleared a directory that was never synced";
    }
    // As for a failed fdatasync, the next good write and the next good sync clear it. This batch
    // fits the active segment: no new segment, so only the interval thread syncs the directory.
    ASSERT_TRUE(spool->accept(make_batch(3)));
    EXPECT_TRUE(eventually([&] { return !spool->write_failing(); })) << "the directory sync was not retried";
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        auto batch = spool->next(1'000'000'000);
        ASSERT_TRUE(batch.has_value());
        EXPECT_EQ(batch->batch.body, make_batch(seed, seed == 3 ? 200 : 3000).body);
        spool->ack(batch->id);
    }
}

// A pass of the interval thread that has only the directory to sync must not clear the alarm
// while a segment's failed fdatasync was never followed by a good one. (A guard: the review that
// raised it found no sequence in which the old code cleared it, since the write gauge also stays
// set until the next write; the race it also raised, a writer's failure landing while a pass runs
// unlocked, is closed by counting failures, and has no deterministic test.)
TEST(SpoolSyncErrors, ADirectorySyncAloneDoesNotClearAFailedFileSync) {
    TempDir tmp;
    SpoolConfig config = small_config(tmp.path());
    config.fsync = SpoolConfig::Fsync::interval;
    config.fsync_interval_ms = 10;
    auto spool = open_spool(config);
    ASSERT_NE(spool, nullptr);
    {
        const failing_sync::Failing failing;
        ASSERT_TRUE(spool->accept(make_batch(1, 3000)));
        ASSERT_TRUE(spool->accept(make_batch(2, 3000)));  // a new segment: the directory too
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // passes fail on both
        EXPECT_TRUE(spool->write_failing());
    }
    // The disk answers again, but nothing new is written: the passes sync only the directory.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_TRUE(spool->write_failing()) << "a directory sync cleared a file whose fdatasync failed";
    ASSERT_TRUE(spool->accept(make_batch(3)));
    EXPECT_TRUE(eventually([&] { return !spool->write_failing(); })) << "a good fdatasync did not clear it";
}

// With fsync = batch a stored batch is durable when accept() returns, so a segment whose
// directory cannot be synced takes no batch until the directory sync succeeds.
TEST(SpoolSyncErrors, WithBatchSyncsNoBatchIsStoredInASegmentWhoseDirectoryIsNotSynced) {
    TempDir tmp;
    SpoolConfig config = small_config(tmp.path());
    config.fsync = SpoolConfig::Fsync::batch;
    auto spool = open_spool(config);
    ASSERT_NE(spool, nullptr);
    {
        const failing_sync::FailingDirectorySync failing;
        ASSERT_TRUE(spool->accept(make_batch(1, 3000)));
        EXPECT_FALSE(spool->accept(make_batch(2, 3000)));  // its new segment's entry is not durable
        EXPECT_TRUE(spool->write_failing());
        EXPECT_EQ(read(spool->stats().dropped_write_error), 1U) << "the refused batch is a counted drop";
    }
    ASSERT_TRUE(spool->accept(make_batch(3, 3000)));
    EXPECT_FALSE(spool->write_failing());
    for (const std::uint64_t seed : {1, 3}) {
        auto batch = spool->next(1'000'000'000);
        ASSERT_TRUE(batch.has_value());
        EXPECT_EQ(batch->batch.body, make_batch(seed, 3000).body);
        spool->ack(batch->id);
    }
}

}  // namespace
}  // namespace cefd::test
