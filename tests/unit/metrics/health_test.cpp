// ReadinessChecks: the verdict behind /readyz.
#include "engine/metrics/health.h"

#include <gtest/gtest.h>

namespace cefd {
namespace {

TEST(ReadinessChecks, ReadyOnlyWhenEveryCheckPasses) {
    ReadinessChecks checks;
    bool spool_ok = true;
    checks.add("listening", [] { return ReadyCheck{true, "2 of 2 lanes receiving"}; });
    checks.add("spool", [&] { return ReadyCheck{spool_ok, spool_ok ? "writable" : "disk full"}; });
    ReadinessChecks::Verdict verdict = checks.evaluate();
    EXPECT_TRUE(verdict.ready);
    EXPECT_EQ(verdict.body, "ready\nlistening ok: 2 of 2 lanes receiving\nspool ok: writable\n");
    spool_ok = false;
    verdict = checks.evaluate();
    EXPECT_FALSE(verdict.ready);
    EXPECT_EQ(verdict.body, "not ready\nlistening ok: 2 of 2 lanes receiving\nspool failed: disk full\n");
}

TEST(ReadinessChecks, NoChecksMeansReady) {
    const ReadinessChecks checks;
    EXPECT_TRUE(checks.evaluate().ready);
    EXPECT_EQ(checks.size(), 0U);
}

TEST(ReadinessChecks, KeepsEachCheckOnOneLine) {
    ReadinessChecks checks;
    checks.add("send", [] { return ReadyCheck{false, "HTTP 503\r\nbody text"}; });
    EXPECT_EQ(checks.evaluate().body, "not ready\nsend failed: HTTP 503  body text\n");
}

TEST(ReadinessChecksDeathTest, RefusesTheSameNameTwice) {
    ReadinessChecks checks;
    checks.add("spool", [] { return ReadyCheck{}; });
    EXPECT_DEATH(checks.add("spool", [] { return ReadyCheck{}; }), "registered twice");
}

}  // namespace
}  // namespace cefd
