// tests/unit/spool/spool_log_test.cpp: what the spool's log lines say. A binary of its own:
// drop lines are logged at most every 10 s per call site, so another test dropping batches
// first in the same process would hide the line this one reads.
#include <gtest/gtest.h>

#include <string>

#include "stages/spool/spool.h"
#include "tests/support/support.h"
#include "tests/unit/spool/spool_test_util.h"

namespace cefd::test {
namespace {

// Issue 13 item 19: the line was written when the segment's first batch was counted, so it
// said "1 batches so far" for a segment of several.
TEST(SpoolLog, DroppedSegmentLineCountsEveryBatchInIt) {
    TempDir tmp;
    SpoolConfig config = small_config(tmp.path());  // 4 KiB segments: 3 batches of 1000 bytes
    config.max_bytes = 4 * 4096;
    config.when_full = SpoolConfig::WhenFull::drop_oldest;
    auto opened = Spool::open(config);
    ASSERT_TRUE(opened) << opened.error().describe();
    auto spool = std::move(opened).value();
    std::uint64_t rows_in_first_segment = 0;
    for (std::uint64_t first = 1; first <= 3; ++first) rows_in_first_segment += make_batch(first, 1000).rows;
    std::uint64_t seed = 0;
    testing::internal::CaptureStderr();
    while (read(spool->stats().dropped_batches) == 0 && seed < 100) ASSERT_TRUE(spool->accept(make_batch(++seed, 1000)));
    const std::string log = testing::internal::GetCapturedStderr();
    ASSERT_EQ(read(spool->stats().dropped_oldest), 3U) << "the whole first segment";
    ASSERT_EQ(read(spool->stats().dropped_rows), rows_in_first_segment);
    const std::string expected = "dropped 3 batch(es) of " + std::to_string(rows_in_first_segment) +
                                 " rows (when_full = drop_oldest); 3 batches so far";
    EXPECT_NE(log.find(expected), std::string::npos) << "expected \"" << expected << "\" in:\n" << log;
}

}  // namespace
}  // namespace cefd::test
