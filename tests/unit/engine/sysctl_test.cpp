#include "engine/sysctl.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/support.h"

namespace cefd {
namespace {

TEST(Sysctl, ReadsTheNumberAFileStartsWith) {
    test::TempDir tmp;
    std::ofstream(tmp.file("n")) << "212992\n";
    EXPECT_EQ(read_sysctl(tmp.file("n").c_str()), 212'992);
    std::ofstream(tmp.file("neg")) << "-1 trailing words\n";
    EXPECT_EQ(read_sysctl(tmp.file("neg").c_str()), -1);
    const auto rmem_max = read_sysctl("/proc/sys/net/core/rmem_max");
    ASSERT_TRUE(rmem_max);
    EXPECT_GT(*rmem_max, 0);
}

TEST(Sysctl, SaysNothingForAMissingOrNonNumericFile) {
    test::TempDir tmp;
    EXPECT_FALSE(read_sysctl(tmp.file("missing").c_str()));
    std::ofstream(tmp.file("words")) << "not a number\n";
    EXPECT_FALSE(read_sysctl(tmp.file("words").c_str()));
    std::ofstream(tmp.file("empty"));
    EXPECT_FALSE(read_sysctl(tmp.file("empty").c_str()));
}

}  // namespace
}  // namespace cefd
