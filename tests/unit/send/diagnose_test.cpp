// Redaction, the Entra ID codes we explain, and the rate limiter of repeated failure lines.
#include "stages/send/diagnose.h"

#include <gtest/gtest.h>

namespace cefd {
namespace {

TEST(RedactSecrets, HidesFormValuesOfSecretParameters) {
    const std::string echoed =
        "You sent: grant_type=client_credentials&client_id=c1&scope=https%3A%2F%2Fmonitor.azure.com%2F%2F.default"
        "&client_secret=abc%26def&client_assertion=eyJhbGciOi.eyJzdWIi.c2ln";
    const std::string out = redact_secrets(echoed, {}, 1000);
    EXPECT_EQ(out.find("abc"), std::string::npos) << out;
    EXPECT_EQ(out.find("eyJ"), std::string::npos) << out;
    EXPECT_NE(out.find("client_secret=***"), std::string::npos) << out;
    EXPECT_NE(out.find("client_id=c1"), std::string::npos) << "what is not secret stays: " << out;
}

TEST(RedactSecrets, HidesJsonMembersHeadersAndKnownLiterals) {
    EXPECT_EQ(redact_secrets(R"({"access_token":"tok123456","expires_in":3599})", {}, 1000),
              R"({"access_token":"***","expires_in":3599})");
    EXPECT_EQ(redact_secrets("echo: Authorization: Bearer eyJ0eXAiOiJKV1Qi.x.y", {}, 1000), "echo: Authorization: Bearer ***");
    EXPECT_EQ(redact_secrets("Basic dXNlcjpwYXNzd29yZA==", {}, 1000), "Basic ***");
    EXPECT_EQ(redact_secrets("the value was my secret+value!", {"secret+value"}, 1000), "the value was my ***!");
    EXPECT_EQ(redact_secrets("encoded: secret%2Bvalue", {"secret+value"}, 1000), "encoded: ***");
    // A JSON string with an escaped quote around the echoed form.
    EXPECT_EQ(redact_secrets(R"(\"client_secret\":\"hunter2hunter2\")", {}, 1000), R"(\"client_secret\":\"***\")");
}

TEST(RedactSecrets, CutsLongTextAndKeepsItOnOneLine) {
    const std::string out = redact_secrets(std::string(500, 'x') + "\nsecond line", {}, 100);
    EXPECT_EQ(out, std::string(100, 'x') + "...");
    EXPECT_EQ(redact_secrets("a\nb\rc", {}, 100), "a b c");
    // Not inside a UTF-8 sequence: "é" is two bytes.
    EXPECT_EQ(redact_secrets("ab\xC3\xA9", {}, 3), "ab...");
}

TEST(RedactUrlPassword, HidesThePasswordAndKeepsTheUserAndHost) {
    EXPECT_EQ(redact_url_password("http://svc:hunter2@proxy.corp:3128"), "http://svc:***@proxy.corp:3128");
    EXPECT_EQ(redact_url_password("socks5h://a:b:c@p:1080/x"), "socks5h://a:***@p:1080/x");
    EXPECT_EQ(redact_url_password("svc:pw@proxy:3128"), "svc:***@proxy:3128");         // curl takes no scheme
    EXPECT_EQ(redact_url_password("http://svc@proxy:3128"), "http://svc@proxy:3128");  // no password
    EXPECT_EQ(redact_url_password("http://proxy:3128/a@b"), "http://proxy:3128/a@b");  // '@' in the path
    EXPECT_EQ(redact_url_password("http://proxy:3128"), "http://proxy:3128");
    EXPECT_EQ(redact_url_password(""), "");
}

TEST(ExplainAadError, NamesTheCodeAndItsUsualCause) {
    EXPECT_EQ(explain_aad_error(R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."})"),
              "AADSTS7000215 (the client secret is wrong: use the secret's value, not its id)");
    EXPECT_NE(explain_aad_error("AADSTS90002: Tenant 'x' not found.").find("tenant not found"), std::string::npos);
    EXPECT_NE(explain_aad_error("AADSTS700016: Application with identifier").find("application not found"), std::string::npos);
    EXPECT_NE(explain_aad_error("AADSTS900023: Specified tenant identifier").find("tenant id is not valid"), std::string::npos);
    EXPECT_EQ(explain_aad_error("AADSTS123: something new"), "AADSTS123");
    EXPECT_EQ(explain_aad_error("no code here"), "");
    EXPECT_NE(std::string(explain_ingestion_status(403)).find("Monitoring Metrics Publisher"), std::string::npos);
}

TEST(LogThrottle, LogsFirstThenOncePerIntervalWithTheCount) {
    constexpr std::int64_t s = 1'000'000'000;
    LogThrottle throttle(30 * s);
    std::uint64_t failures = 0;
    EXPECT_TRUE(throttle.record(100 * s, failures));
    EXPECT_EQ(failures, 1U);
    for (int i = 1; i < 10; ++i) EXPECT_FALSE(throttle.record(100 * s + i * s, failures));
    EXPECT_TRUE(throttle.record(130 * s, failures));
    EXPECT_EQ(failures, 10U) << "nine held back and this one";
    EXPECT_FALSE(throttle.record(131 * s, failures));
    EXPECT_TRUE(throttle.record(200 * s, failures));
    EXPECT_EQ(failures, 2U);
}

}  // namespace
}  // namespace cefd
