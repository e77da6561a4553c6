#include "stages/send/body.h"

#include <gtest/gtest.h>

#include "tests/unit/send/test_source.h"

namespace cefd {
namespace {

TEST(SplitJsonArray, SplitsAtARowBoundaryIgnoringCommasInStrings) {
    const std::string json = R"([{"a":"x,y]"},{"b":[1,2,{"c":"}"}]},{"d":"\"],["},{"e":1}])";
    const auto split = split_json_array(json);
    ASSERT_TRUE(split.has_value());
    EXPECT_EQ(split->first + "|" + split->second, R"([{"a":"x,y]"},{"b":[1,2,{"c":"}"}]}]|[{"d":"\"],["},{"e":1}])");
    EXPECT_EQ(split->first_rows, 2U);
    EXPECT_EQ(split->second_rows, 2U);
}

TEST(SplitJsonArray, RefusesASingleRow) {
    EXPECT_FALSE(split_json_array(R"([{"a":"x,y"}])").has_value());
    EXPECT_FALSE(split_json_array("not json").has_value());
}

TEST(SplitBatch, HalvesKeepEveryRowAndRoundTrip) {
    const SealedBatch batch = test::make_batch("t", 101);
    const auto halves = split_batch(batch);
    ASSERT_TRUE(halves.has_value());
    EXPECT_EQ(halves->first.rows + halves->second.rows, 101U);
    const auto a = gunzip_body(halves->first.body, 0);
    const auto b = gunzip_body(halves->second.body, 0);
    ASSERT_TRUE(a && b);
    const auto whole = gunzip_body(batch.body, batch.json_bytes);
    ASSERT_TRUE(whole);
    EXPECT_EQ(a->substr(0, a->size() - 1) + "," + b->substr(1), *whole);
    EXPECT_EQ(halves->first.json_bytes, a->size());
}

}  // namespace
}  // namespace cefd
