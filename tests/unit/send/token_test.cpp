// The token helpers that need no server: the Arc key-file rules and the refresh schedule.
#include "stages/send/token.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "tests/support/support.h"

namespace cefd {
namespace {

struct ArcDir {
    ArcDir() { std::filesystem::create_directory(tokens); }
    test::TempDir dir;
    std::string tokens = dir.file("tokens");
};

TEST(ArcKey, ReadsTheKeyFileTheChallengeNames) {
    ArcDir arc;
    test::write_file(arc.tokens + "/abc.key", "secret-key-content\n");
    auto key = read_arc_key("Basic realm=" + arc.tokens + "/abc.key", arc.tokens);
    ASSERT_TRUE(key.ok()) << key.error().describe();
    EXPECT_EQ(*key, "secret-key-content");
}

TEST(ArcKey, RefusesFilesOutsideTheTokenDirectory) {
    ArcDir arc;
    test::write_file(arc.dir.file("outside.key"), "x");
    EXPECT_FALSE(read_arc_key("Basic realm=" + arc.dir.file("outside.key"), arc.tokens).ok());
    EXPECT_FALSE(read_arc_key("Basic realm=" + arc.tokens + "/../outside.key", arc.tokens).ok());
    // A link inside the directory that points out of it.
    ASSERT_EQ(::symlink(arc.dir.file("outside.key").c_str(), (arc.tokens + "/link.key").c_str()), 0);
    EXPECT_FALSE(read_arc_key("Basic realm=" + arc.tokens + "/link.key", arc.tokens).ok());
}

TEST(ArcKey, RefusesWhatIsNotASmallKeyFile) {
    ArcDir arc;
    test::write_file(arc.tokens + "/abc.txt", "x");
    EXPECT_FALSE(read_arc_key("Basic realm=" + arc.tokens + "/abc.txt", arc.tokens).ok());
    test::write_file(arc.tokens + "/big.key", std::string(5000, 'k'));
    EXPECT_FALSE(read_arc_key("Basic realm=" + arc.tokens + "/big.key", arc.tokens).ok());
    test::write_file(arc.tokens + "/two.key", "line1\nline2");
    EXPECT_FALSE(read_arc_key("Basic realm=" + arc.tokens + "/two.key", arc.tokens).ok());
    EXPECT_FALSE(read_arc_key("Basic", arc.tokens).ok());
    EXPECT_FALSE(read_arc_key("Basic realm=" + arc.tokens + "/missing.key", arc.tokens).ok());
}

TEST(TokenRefresh, IsAheadOfExpiryButNeverBeforeHalfLife) {
    constexpr std::int64_t s = 1'000'000'000;
    EXPECT_EQ(token_refresh_after_ns(3600), 2880 * s);  // 80 %
    EXPECT_EQ(token_refresh_after_ns(5400), 4320 * s);  // 80 % (5 min before would be later)
    EXPECT_EQ(token_refresh_after_ns(600), 300 * s);    // half-life floor
    EXPECT_EQ(token_refresh_after_ns(2), 1 * s);
}

}  // namespace
}  // namespace cefd
