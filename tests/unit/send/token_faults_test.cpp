// The sender against a token endpoint that misbehaves (issue 13 items 8, 14, 17; issue 10):
// answers that are not JSON, 10 MB of JSON, no or zero expires_in, absurd expires_in, and an
// endpoint that echoes the request (with the client secret) in its error. Each case: no crash,
// no hot loop (this process's CPU time stays low), and the secret never reaches the log.
// Real HTTP on loopback (cpp-httplib), the real Sender; stderr (the log) is captured to a file.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "engine/clock.h"
#include "stages/send/send.h"
#include "tests/support/support.h"
#include "tests/unit/send/test_source.h"

namespace cefd {
namespace {

using namespace std::chrono_literals;

constexpr const char* tenant = "tenant-h";
constexpr const char* secret = "Hostile-Secret+Value/42&=";  // URL-escaping changes it
constexpr const char* dcr = "dcr-0123456789abcdef0123456789abcdef";

enum class Answer {
    echo_text,        // 400, the request body echoed as text
    echo_json,        // 401 invalid_client, the request body echoed inside error_description
    not_json,         // 200 with HTML
    huge_json,        // 200 with 10 MB of JSON
    no_expires_in,    // 200, a token without expires_in
    zero_expires_in,  // 200, expires_in 0
    expires_in_9e9,   // 200, expires_in 9,300,000,000 (overflowed the expiry in ns)
    expires_in_9e13,  // 200, expires_in 92,233,720,368,547 (overflowed the refresh time)
    expires_in_1e300, // 200, expires_in as a huge double
};

/// Entra ID that answers `answer`, and an ingestion endpoint that takes any bearer token it
/// issued.
class HostileAzure {
public:
    explicit HostileAzure(Answer answer) : answer_(answer) {
        server_.Post(std::string("/") + tenant + "/oauth2/v2.0/token",
                     [this](const httplib::Request& req, httplib::Response& res) { token(req, res); });
        server_.Post(R"(/dataCollectionRules/([^/]+)/streams/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
            ++ingest_requests_;
            res.status = req.get_header_value("Authorization") == "Bearer tok-hostile" ? 204 : 401;
        });
        port_ = server_.bind_to_any_port("127.0.0.1");
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        test::wait_until(5s, [this] { return server_.is_running(); });
    }
    ~HostileAzure() {
        server_.stop();
        thread_.join();
    }
    [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::atomic<std::size_t> token_requests_{0};
    std::atomic<std::size_t> ingest_requests_{0};

private:
    void token(const httplib::Request& req, httplib::Response& res) {
        ++token_requests_;
        const auto issue = [&](const std::string& expires) {
            res.set_content(R"({"token_type":"Bearer",)" + expires + R"("access_token":"tok-hostile"})", "application/json");
        };
        switch (answer_) {
            case Answer::echo_text:
                res.status = 400;
                res.set_content("Bad request. You sent: " + req.body, "text/plain");
                return;
            case Answer::echo_json:
                res.status = 401;
                res.set_content(R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Request: )" +
                                    req.body + "\"}",
                                "application/json");
                return;
            case Answer::not_json: res.set_content("<html><body>Sign in</body></html>", "text/html"); return;
            case Answer::huge_json:
                res.set_content(R"({"access_token":"tok-hostile","padding":")" + std::string(10'000'000, 'a') + "\"}",
                                "application/json");
                return;
            case Answer::no_expires_in: return issue("");
            case Answer::zero_expires_in: return issue(R"("expires_in":0,)");
            case Answer::expires_in_9e9: return issue(R"("expires_in":9300000000,)");
            case Answer::expires_in_9e13: return issue(R"("expires_in":92233720368547,)");
            case Answer::expires_in_1e300: return issue(R"("expires_in":1e300,)");
        }
    }

    Answer answer_;
    httplib::Server server_;
    std::thread thread_;
    int port_ = 0;
};

/// Redirects this process's stderr (the log) to a file until destroyed.
class CapturedLog {
public:
    CapturedLog() : saved_(::dup(2)) {
        const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ::dup2(fd, 2);
        ::close(fd);
    }
    ~CapturedLog() { restore(); }
    /// Everything logged so far; stderr goes back to where it was.
    std::string text() {
        restore();
        return test::read_file(path_);
    }

private:
    void restore() {
        if (saved_ < 0) return;
        ::dup2(saved_, 2);
        ::close(saved_);
        saved_ = -1;
    }
    test::TempDir dir_;
    std::string path_ = dir_.file("log");
    int saved_;
};

double cpu_seconds() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

AzureConfig config_for(const HostileAzure& azure, const test::TempDir& dir) {
    AzureConfig c;
    c.target.endpoint = azure.url();
    c.target.dcr_id = dcr;
    c.auth = AzureConfig::Auth::client_secret;
    c.authority_host = azure.url();
    c.tenant_id = tenant;
    c.client_id = "client-h";
    c.client_secret = Secret(secret);
    c.dead_letter_dir = dir.file("dead-letter");
    c.retry_initial_ms = 20;
    c.retry_max_ms = 200;
    c.drain_timeout_ms = 100;
    return c;
}

struct RunningSender {
    RunningSender(const AzureConfig& config, test::MemorySource& source) {
        auto created = Sender::create(config, source);
        if (!created) throw std::runtime_error(created.error().describe());
        sender = std::move(created).value();
        thread = std::jthread([this](std::stop_token stop) { sender->run(stop); });
    }
    ~RunningSender() {
        thread.request_stop();
        thread.join();
    }
    std::unique_ptr<Sender> sender;
    std::jthread thread;
};

/// No form of the secret appears in `text`.
void expect_no_secret(const std::string& text, const std::string& where) {
    for (const std::string& form : {std::string(secret), std::string("Hostile-Secret%2BValue%2F42%26%3D"),
                                   std::string("Hostile-Secret+Value"), std::string("Hostile-Secret%2B")})
        EXPECT_EQ(text.find(form), std::string::npos) << where << " holds the secret (" << form << "):\n" << text;
}

/// A failing token endpoint: fetches are retried with backoff (1 s, 2 s, ...), not in a loop.
void expect_backoff_without_hot_loop(Answer answer) {
    CapturedLog log;
    HostileAzure azure(answer);
    test::TempDir dir;
    test::MemorySource source;
    source.add(test::make_batch("h", 5));
    const double cpu_before = cpu_seconds();
    const std::int64_t wall_before = monotonic_ns();
    {
        RunningSender sender(config_for(azure, dir), source);
        // The second fetch comes after the first backoff (1 s).
        EXPECT_TRUE(test::wait_until(10s, [&] { return azure.token_requests_ >= 2; }))
            << "token requests: " << azure.token_requests_;
        const SendHealth health = sender.sender->health();
        EXPECT_FALSE(health.token_valid);
        EXPECT_GE(health.consecutive_failures, 1U);
        EXPECT_FALSE(health.last_error.empty());
        expect_no_secret(health.last_error, "SendHealth::last_error");
        EXPECT_GE(read(sender.sender->stats().token_errors), 1U);
        EXPECT_EQ(read(sender.sender->stats().token_expiry_unix_s), 0U);
    }
    const double wall_s = static_cast<double>(monotonic_ns() - wall_before) / 1e9;
    const double cpu_s = cpu_seconds() - cpu_before;
    EXPECT_LE(azure.token_requests_, 4U) << "a hot loop fetches tokens many times a second";
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    // A busy wait without fetches would not show in token_requests_. Sanitized builds parse the
    // 10 MB answers several times slower, so this bound holds only for unsanitized ones.
    EXPECT_LT(cpu_s, 0.2 * wall_s) << "CPU " << cpu_s << " s over " << wall_s << " s of wall time";
#else
    (void)cpu_s;
    (void)wall_s;
#endif
    EXPECT_EQ(source.acked(), 0U);
    EXPECT_EQ(azure.ingest_requests_, 0U);
    const std::string text = log.text();
    EXPECT_NE(text.find("cannot get a token"), std::string::npos) << text;
    expect_no_secret(text, "the log");
}

/// A token endpoint that answers with a usable token whose lifetime is odd: delivered, and the
/// token is fetched once, not in a loop.
void expect_delivery_with_one_token(Answer answer) {
    CapturedLog log;
    HostileAzure azure(answer);
    test::TempDir dir;
    test::MemorySource source;
    for (int i = 0; i < 3; ++i) source.add(test::make_batch("ok" + std::to_string(i), 5));
    const double cpu_before = cpu_seconds();
    const std::int64_t wall_before = monotonic_ns();
    {
        RunningSender sender(config_for(azure, dir), source);
        EXPECT_TRUE(test::wait_until(10s, [&] { return source.acked() == 3; }))
            << "acked " << source.acked() << " of 3; token requests " << azure.token_requests_;
        // More work after the first token: still no second fetch.
        source.add(test::make_batch("late", 5));
        EXPECT_TRUE(test::wait_until(10s, [&] { return source.acked() == 4; })) << "acked " << source.acked();
        const SendHealth health = sender.sender->health();
        EXPECT_TRUE(health.token_valid);
        EXPECT_TRUE(health.last_send_ok);
        EXPECT_GT(health.last_success_unix_s, 0);
        EXPECT_EQ(health.consecutive_failures, 0U);
        EXPECT_EQ(health.last_error, "");
        const std::int64_t now_s = wall_clock_ns() / 1'000'000'000;
        EXPECT_GT(health.token_expires_unix_s, now_s);
        EXPECT_LE(health.token_expires_unix_s, now_s + 86'400) << "lifetimes are capped at 24 h";
        EXPECT_EQ(static_cast<std::int64_t>(read(sender.sender->stats().token_expiry_unix_s)), health.token_expires_unix_s);
    }
    const double wall_s = static_cast<double>(monotonic_ns() - wall_before) / 1e9;
    const double cpu_s = cpu_seconds() - cpu_before;
    EXPECT_EQ(azure.token_requests_, 1U);
    // Loose on purpose: the loop this guards against burns a whole core.
    EXPECT_LT(cpu_s, 0.5 + 0.2 * wall_s) << "CPU " << cpu_s << " s over " << wall_s << " s of wall time";
    const std::string text = log.text();
    expect_no_secret(text, "the log");
    EXPECT_EQ(text.find("tok-hostile"), std::string::npos) << "the bearer token reached the log:\n" << text;
}

TEST(TokenEndpointFaults, EchoedFormIsRedactedFromTheLog) { expect_backoff_without_hot_loop(Answer::echo_text); }

TEST(TokenEndpointFaults, EchoedFormInsideJsonIsRedactedAndTheAadCodeExplained) {
    CapturedLog log;
    HostileAzure azure(Answer::echo_json);
    test::TempDir dir;
    test::MemorySource source;
    source.add(test::make_batch("e", 5));
    std::string last_error;
    {
        RunningSender sender(config_for(azure, dir), source);
        EXPECT_TRUE(test::wait_until(10s, [&] { return read(sender.sender->stats().token_errors) >= 1; }));
        last_error = sender.sender->health().last_error;
    }
    const std::string text = log.text();
    expect_no_secret(text, "the log");
    expect_no_secret(last_error, "SendHealth::last_error");
    EXPECT_NE(text.find("AADSTS7000215 (the client secret is wrong"), std::string::npos) << text;
    EXPECT_NE(last_error.find("AADSTS7000215"), std::string::npos) << last_error;
    EXPECT_NE(text.find("1 failure since the last line"), std::string::npos) << text;
}

TEST(TokenEndpointFaults, NonJsonAnswerIsRetriedWithBackoff) { expect_backoff_without_hot_loop(Answer::not_json); }
TEST(TokenEndpointFaults, TenMegabytesOfJsonAreRetriedWithBackoff) { expect_backoff_without_hot_loop(Answer::huge_json); }
TEST(TokenEndpointFaults, MissingExpiresInMeansFiveMinutes) { expect_delivery_with_one_token(Answer::no_expires_in); }
TEST(TokenEndpointFaults, ZeroExpiresInMeansFiveMinutes) { expect_delivery_with_one_token(Answer::zero_expires_in); }
TEST(TokenEndpointFaults, HugeExpiresInDoesNotStallDeliveries) { expect_delivery_with_one_token(Answer::expires_in_9e9); }
TEST(TokenEndpointFaults, HugerExpiresInDoesNotRefetchInALoop) { expect_delivery_with_one_token(Answer::expires_in_9e13); }
TEST(TokenEndpointFaults, ExpiresInAsAHugeDoubleIsCapped) { expect_delivery_with_one_token(Answer::expires_in_1e300); }

}  // namespace
}  // namespace cefd
