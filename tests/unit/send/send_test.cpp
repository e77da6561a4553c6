// Sender against a scriptable loopback fake (fake_azure.h): every outcome path with exact
// answer sequences. Real HTTP, real gzip, real files for the dead letters.
#include "stages/send/send.h"

#include <gtest/gtest.h>
#include <zstd.h>

#include <filesystem>
#include <thread>

#include "tests/support/support.h"
#include "tests/unit/send/fake_azure.h"
#include "tests/unit/send/test_source.h"

namespace cefd {
namespace {

using namespace std::chrono_literals;

AzureConfig config_for(const test::FakeAzure& azure, const test::TempDir& dir) {
    AzureConfig c;
    c.target.endpoint = azure.url();
    c.target.dcr_id = test::FakeAzure::dcr;
    c.auth = AzureConfig::Auth::client_secret;
    c.authority_host = azure.url();
    c.tenant_id = test::FakeAzure::tenant;
    c.client_id = "client-1";
    c.client_secret = Secret(test::FakeAzure::secret);
    c.dead_letter_dir = dir.file("dead-letter");
    c.retry_initial_ms = 20;
    c.retry_max_ms = 200;
    c.drain_timeout_ms = 5'000;
    return c;
}

/// Runs a Sender on its own thread until the source has nothing pending (or the deadline).
struct RunningSender {
    RunningSender(const AzureConfig& config, test::MemorySource& source) {
        auto created = Sender::create(config, source);
        if (!created) throw std::runtime_error(created.error().describe());
        sender = std::move(created).value();
        thread = std::jthread([this](std::stop_token stop) { sender->run(stop); });
    }
    void stop() {
        thread.request_stop();
        thread.join();
    }
    ~RunningSender() {
        if (thread.joinable()) stop();
    }
    const SendStats& stats() const { return sender->stats(); }
    std::unique_ptr<Sender> sender;
    std::jthread thread;
};

void add_batches(test::MemorySource& source, const std::string& tag, int batches, std::uint32_t rows) {
    for (int b = 0; b < batches; ++b) source.add(test::make_batch(tag + std::to_string(b), rows));
}

// A 429's Retry-After pauses the target; a reload (here the same config, as after a rotated
// secret file) must not lift it. It did: the rebuilt target went out with 3 more requests.
// Found in review.
TEST(Sender, AReloadKeepsTheRetryAfterPause) {
    test::FakeAzure azure;
    azure.set_always_for(test::FakeAzure::dcr, 429, 30);
    test::TempDir dir;
    test::MemorySource source;
    AzureConfig config = config_for(azure, dir);
    config.max_in_flight = 4;
    config.drain_timeout_ms = 500;
    source.add(test::make_batch("first", 5));
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return read(sender.stats().throttled) == 1; }));
    add_batches(source, "more", 3, 5);
    std::this_thread::sleep_for(1s);
    ASSERT_EQ(azure.requests_for(test::FakeAzure::dcr), 1U) << "paused by Retry-After: 30";
    ASSERT_TRUE(sender.sender->reconfigure(config).ok());
    ASSERT_TRUE(test::wait_until(5s, [&] { return sender.sender->reconfigurations() == 1; }));
    std::this_thread::sleep_for(1500ms);
    EXPECT_EQ(azure.requests_for(test::FakeAzure::dcr), 1U)
        << "requests sent to a target inside its 30 s Retry-After after a reload";
}

TEST(Sender, DeliversEveryBatchWithClientSecret) {
    test::FakeAzure azure;
    test::TempDir dir;
    test::MemorySource source;
    add_batches(source, "b", 20, 50);
    RunningSender sender(config_for(azure, dir), source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == 20; })) << "acked " << source.acked();
    sender.stop();
    EXPECT_EQ(azure.rows(), 1'000U);
    EXPECT_EQ(azure.distinct_rows(), 1'000U);
    EXPECT_EQ(azure.tokens_issued(), 1U);
    EXPECT_EQ(read(sender.stats().delivered_batches), 20U);
    EXPECT_EQ(read(sender.stats().delivered_rows), 1'000U);
    EXPECT_EQ(read(sender.stats().retries), 0U);
    EXPECT_EQ(source.bad_acks(), 0U);
    EXPECT_EQ(azure.last_request_id().size(), 36U);
    EXPECT_EQ(azure.last_request_id()[14], '4') << "UUID v4: " << azure.last_request_id();
}

TEST(Sender, GetsTokenFromManagedIdentity) {
    test::FakeAzure azure;
    test::TempDir dir;
    test::MemorySource source;
    add_batches(source, "m", 3, 10);
    AzureConfig config = config_for(azure, dir);
    config.auth = AzureConfig::Auth::managed_identity;
    config.imds_endpoint = azure.url() + "/metadata/identity/oauth2/token";
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == 3; })) << "acked " << source.acked();
    EXPECT_EQ(azure.rows(), 30U);
    EXPECT_EQ(read(sender.stats().token_refreshes), 1U);
}

TEST(Sender, WrongSecretIsCountedAndNothingIsAcked) {
    test::FakeAzure azure;
    test::TempDir dir;
    test::MemorySource source;
    add_batches(source, "w", 2, 10);
    AzureConfig config = config_for(azure, dir);
    config.client_secret = Secret("wrong");
    config.drain_timeout_ms = 100;
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return read(sender.stats().token_errors) >= 1; }));
    sender.stop();
    EXPECT_EQ(source.acked(), 0U);
    EXPECT_EQ(source.pending(), 2U);
    EXPECT_EQ(azure.requests(), 0U);
}

TEST(Sender, RefreshesTheTokenOnceAfter401) {
    test::FakeAzure azure;
    test::TempDir dir;
    test::MemorySource source;
    add_batches(source, "a", 2, 10);
    RunningSender sender(config_for(azure, dir), source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == 2; }));
    azure.revoke_tokens();  // the cached token is now unknown: the next request gets 401
    add_batches(source, "b", 2, 10);
    ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == 4; })) << "acked " << source.acked();
    EXPECT_GE(read(sender.stats().unauthorized), 1U);
    EXPECT_EQ(azure.tokens_issued(), 2U);
    EXPECT_EQ(azure.distinct_rows(), 40U);
}

TEST(Sender, RefreshesAShortLivedTokenAheadOfExpiry) {
    test::FakeAzure azure;
    azure.set_token_lifetime_s(1);  // refreshed after half its life
    test::TempDir dir;
    test::MemorySource source;
    RunningSender sender(config_for(azure, dir), source);
    for (int wave = 0; wave < 3; ++wave) {
        std::string prefix = "w";  // not "w" + to_string(wave): GCC 12 warns falsely (-Wrestrict)
        prefix += std::to_string(wave) + "-";
        add_batches(source, prefix, 1, 10);
        ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == static_cast<std::size_t>(wave + 1); }));
        const std::size_t issued = azure.tokens_issued();
        ASSERT_TRUE(test::wait_until(10s, [&] { return azure.tokens_issued() > issued; }));
    }
    EXPECT_EQ(azure.distinct_rows(), 30U);
}

TEST(Sender, DeliversWithTheCurrentTokenWhileARefreshIsSlow) {
    test::FakeAzure azure;
    azure.set_token_lifetime_s(6);  // refreshed after 3 s; valid for 6
    test::TempDir dir;
    test::MemorySource source;
    RunningSender sender(config_for(azure, dir), source);
    add_batches(source, "first", 1, 10);
    ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == 1; }));
    azure.hold_tokens();  // the refresh now hangs in the token endpoint until released
    ASSERT_TRUE(test::wait_until(10s, [&] { return azure.token_requests() == 2; }))
        << "token requests: " << azure.token_requests();
    add_batches(source, "during", 5, 10);
    ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == 6; }))
        << "acked " << source.acked() << ": deliveries waited for the token refresh";
    EXPECT_EQ(azure.tokens_issued(), 1U) << "the refresh is still held, so these used the first token";
    azure.release_tokens();
    ASSERT_TRUE(test::wait_until(10s, [&] { return read(sender.stats().token_refreshes) == 2; }));
    EXPECT_EQ(azure.distinct_rows(), 60U);
}

TEST(Sender, AThrottledTargetIsBackedOffAndTheOtherTakesEverything) {
    test::FakeAzure azure;
    // Retry-After far beyond this test's deadline: delivering everything proves no batch waited.
    azure.set_always_for(test::FakeAzure::dcr, 429, 120);
    test::TempDir dir;
    test::MemorySource source;
    add_batches(source, "s", 40, 10);
    AzureConfig config = config_for(azure, dir);
    config.max_in_flight = 4;
    config.target.max_in_flight = 2;
    AzureTarget second = config.target;
    second.dcr_id = test::FakeAzure::second_dcr;
    config.extra_targets.push_back(second);
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(20s, [&] { return source.acked() == 40; })) << "acked " << source.acked();
    // At most its own cap of requests reached the throttled target before its 429s paused it.
    EXPECT_GE(azure.requests_for(test::FakeAzure::dcr), 1U);
    EXPECT_LE(azure.requests_for(test::FakeAzure::dcr), 2U);
    EXPECT_EQ(azure.rows_for(test::FakeAzure::dcr), 0U);
    EXPECT_EQ(azure.rows_for(test::FakeAzure::second_dcr), 400U);
    EXPECT_EQ(azure.distinct_rows(), 400U);
    EXPECT_EQ(read(sender.stats().throttled), azure.requests_for(test::FakeAzure::dcr));
}

TEST(Sender, TwoTargetsShareTheLoadByWeightWithinTheirCaps) {
    test::FakeAzure azure;
    test::TempDir dir;
    test::MemorySource source;
    add_batches(source, "w", 40, 5);
    AzureConfig config = config_for(azure, dir);
    config.max_in_flight = 4;
    config.target.weight = 3;
    config.target.max_in_flight = 3;
    AzureTarget second = config.target;
    second.dcr_id = test::FakeAzure::second_dcr;
    second.weight = 1;
    second.max_in_flight = 1;
    config.extra_targets.push_back(second);
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(20s, [&] { return source.acked() == 40; })) << "acked " << source.acked();
    // Smooth weighted round robin: 3 of every 4 requests go to the first while neither is full.
    EXPECT_GE(azure.requests_for(test::FakeAzure::second_dcr), 1U);
    EXPECT_GT(azure.requests_for(test::FakeAzure::dcr), azure.requests_for(test::FakeAzure::second_dcr));
    EXPECT_EQ(azure.distinct_rows(), 200U);
}

TEST(Sender, Honours429RetryAfter) {
    test::FakeAzure azure;
    azure.script({429});
    test::TempDir dir;
    test::MemorySource source;
    add_batches(source, "t", 1, 10);
    RunningSender sender(config_for(azure, dir), source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == 1; }));
    EXPECT_EQ(read(sender.stats().throttled), 1U);
    EXPECT_EQ(read(sender.stats().retries), 1U);
    EXPECT_EQ(azure.distinct_rows(), 10U);
}

TEST(Sender, RetriesAServerErrorBurst) {
    test::FakeAzure azure;
    azure.script({500, 503, 502, 504, 500});
    test::TempDir dir;
    test::MemorySource source;
    add_batches(source, "s", 4, 25);
    RunningSender sender(config_for(azure, dir), source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == 4; }));
    EXPECT_EQ(read(sender.stats().server_errors), 5U);
    EXPECT_EQ(read(sender.stats().retries), 5U);
    EXPECT_EQ(azure.distinct_rows(), 100U);
}

// A 2xx other than 204 (a proxy's 202, say) is the batch taken: it was retried, and so
// resent (a duplicate) for as long as the answer stayed the same.
TEST(Sender, AnyTwoHundredIsDelivered) {
    test::FakeAzure azure;
    azure.script({202, 201});
    test::TempDir dir;
    test::MemorySource source;
    add_batches(source, "a", 2, 10);
    AzureConfig config = config_for(azure, dir);
    config.max_in_flight = 1;
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == 2; }));
    EXPECT_EQ(read(sender.stats().retries), 0U);
    EXPECT_EQ(read(sender.stats().delivered_batches), 2U);
    EXPECT_EQ(read(sender.stats().delivered_rows), 20U);
    EXPECT_EQ(azure.requests(), 2U);
}

// A body far larger than libcurl's upload buffer (256 KiB, send_setup.cpp) goes in several
// passes through it: every row still arrives once, and the body the server inflates is whole.
TEST(Sender, DeliversABodyLargerThanTheUploadBuffer) {
    test::FakeAzure azure;
    test::TempDir dir;
    test::MemorySource source;
    // Rows padded with pseudo-random letters from a 64-symbol alphabet barely compress.
    constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::uint64_t state = 0x9e3779b97f4a7c15ULL;
    std::string json = "[";
    constexpr std::uint32_t rows = 200;
    for (std::uint32_t i = 0; i < rows; ++i) {
        std::string noise(4'400, ' ');
        for (char& c : noise) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            c = alphabet[state >> 58];
        }
        if (i > 0) json += ',';
        json += R"({"TimeGenerated":"2026-11-29T08:28:21.123456Z","DeviceVendor":"Darktrace","ExtID":"big-)" +
                std::to_string(i) + R"(","Message":")" + noise + R"("})";
    }
    json += ']';
    SealedBatch batch;
    batch.body = gzip_body(json);
    batch.rows = rows;
    batch.json_bytes = static_cast<std::uint32_t>(json.size());
    ASSERT_GT(batch.body.size(), 512U * 1024) << "the body must span several upload buffers";
    ASSERT_LT(json.size(), 1U << 20);
    source.add(std::move(batch));

    RunningSender sender(config_for(azure, dir), source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == 1; }));
    EXPECT_EQ(azure.rows(), rows);
    EXPECT_EQ(azure.distinct_rows(), rows);
    EXPECT_EQ(source.bad_acks(), 0U);
}

TEST(Sender, Splits413UntilEveryPartFits) {
    test::FakeAzure azure;
    test::TempDir dir;
    test::MemorySource source;
    source.add(test::make_batch("big", 400));
    const std::uint32_t json_bytes = test::make_batch("big", 400).json_bytes;
    azure.set_max_json_bytes(json_bytes / 3);  // needs two levels of splitting
    RunningSender sender(config_for(azure, dir), source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == 1; }));
    EXPECT_GE(read(sender.stats().split_batches), 3U);
    EXPECT_EQ(azure.rows(), 400U);
    EXPECT_EQ(azure.distinct_rows(), 400U);
    EXPECT_LE(azure.max_json_seen(), json_bytes);
    EXPECT_EQ(source.bad_acks(), 0U);
}

std::vector<std::filesystem::path> files_in(const std::string& dir) {
    std::vector<std::filesystem::path> out;
    std::error_code ignored;
    for (const auto& e : std::filesystem::directory_iterator(dir, ignored)) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

TEST(Sender, DeadLetters403WithMetadata) {
    test::FakeAzure azure;
    azure.script({403});
    test::TempDir dir;
    test::MemorySource source;
    add_batches(source, "d", 1, 7);
    AzureConfig config = config_for(azure, dir);
    config.forbidden_retry_window_ms = 0;  // dead-letter at the first 403
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == 1; }));
    EXPECT_EQ(read(sender.stats().dead_lettered_batches), 1U);
    EXPECT_EQ(read(sender.stats().dead_lettered_rows), 7U);
    const auto files = files_in(dir.file("dead-letter"));
    ASSERT_EQ(files.size(), 2U);
    EXPECT_TRUE(files[0].string().ends_with(".json.zst"));
    EXPECT_TRUE(files[1].string().ends_with(".meta.json"));
    const std::string meta = test::read_file(files[1]);
    EXPECT_NE(meta.find("\"status\":403"), std::string::npos) << meta;
    EXPECT_NE(meta.find(azure.last_request_id()), std::string::npos) << meta;
    // When it was written, as UTC ISO 8601 to the second.
    const auto time_at = meta.find("\"time\":\"");
    ASSERT_NE(time_at, std::string::npos) << meta;
    const std::string time = meta.substr(time_at + 8, 20);
    EXPECT_EQ(time.size(), 20U) << meta;
    EXPECT_TRUE(time[4] == '-' && time[7] == '-' && time[10] == 'T' && time[13] == ':' && time[16] == ':' &&
                time[19] == 'Z')
        << time;
    const std::string compressed = test::read_file(files[0]);
    std::string json(ZSTD_getFrameContentSize(compressed.data(), compressed.size()), '\0');
    json.resize(ZSTD_decompress(json.data(), json.size(), compressed.data(), compressed.size()));
    EXPECT_TRUE(json.starts_with("[{\"TimeGenerated\"")) << json.substr(0, 80);
    EXPECT_EQ(meta.find(test::FakeAzure::secret), std::string::npos);
}

TEST(Sender, DeadLettersUnknownDcrAs404) {
    test::FakeAzure azure;
    test::TempDir dir;
    test::MemorySource source;
    add_batches(source, "n", 2, 5);
    AzureConfig config = config_for(azure, dir);
    config.target.dcr_id = "dcr-ffffffffffffffffffffffffffffffff";
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == 2; }));
    EXPECT_EQ(read(sender.stats().dead_lettered_batches), 2U);
    EXPECT_EQ(files_in(dir.file("dead-letter")).size(), 4U);
}

TEST(Sender, StopHandsUndeliveredBatchesBackAfterTheDrainTimeout) {
    test::FakeAzure azure;
    azure.set_always(503);
    test::TempDir dir;
    test::MemorySource source;
    add_batches(source, "u", 6, 5);
    AzureConfig config = config_for(azure, dir);
    config.drain_timeout_ms = 200;
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return read(sender.stats().server_errors) >= 3; }));
    sender.stop();
    EXPECT_EQ(source.acked(), 0U);
    EXPECT_EQ(source.pending(), 6U) << "every batch is back in the source";
    EXPECT_GE(source.released(), 1U);
    EXPECT_EQ(read(sender.stats().in_flight), 0U);
}

TEST(Sender, DrainsPendingBatchesBeforeStopping) {
    test::FakeAzure azure;
    test::TempDir dir;
    test::MemorySource source;
    AzureConfig config = config_for(azure, dir);
    auto sender = Sender::create(config, source);
    ASSERT_TRUE(sender.ok());
    add_batches(source, "z", 10, 5);
    std::stop_source stop;
    stop.request_stop();  // stop before the first pass: it must still deliver everything
    (*sender)->run(stop.get_token());
    EXPECT_EQ(source.acked(), 10U);
    EXPECT_EQ(azure.distinct_rows(), 50U);
}

TEST(Sender, RegistersMetrics) {
    test::FakeAzure azure;
    test::TempDir dir;
    test::MemorySource source;
    auto sender = Sender::create(config_for(azure, dir), source);
    ASSERT_TRUE(sender.ok());
    MetricsRegistry registry;
    (*sender)->register_metrics(registry);
    const std::string text = registry.render();
    EXPECT_NE(text.find("send_delivered_rows_total"), std::string::npos);
    EXPECT_NE(text.find("send_in_flight"), std::string::npos);
}

TEST(AzureConfig, ClientCertificateNeedsItsCertificateFile) {
    AzureConfig c;
    c.target.endpoint = "https://x.ingest.monitor.azure.com";
    c.target.dcr_id = test::FakeAzure::dcr;
    c.auth = AzureConfig::Auth::client_certificate;
    ConfigErrors errors;
    c.validate(errors);
    std::string all;
    for (const auto& e : errors.list()) all += e + "\n";
    EXPECT_NE(all.find("azure.tenant_id"), std::string::npos) << all;
    EXPECT_NE(all.find("azure.client_id"), std::string::npos) << all;
    EXPECT_NE(all.find("azure.client_certificate_file"), std::string::npos) << all;
}

TEST(AzureConfig, RejectsBadValuesTogether) {
    AzureConfig c;
    c.target.endpoint = "http://example.com";
    c.target.dcr_id = "nope";
    c.max_in_flight = 0;
    ConfigErrors errors;
    c.validate(errors);
    EXPECT_GE(errors.list().size(), 4U);
}

}  // namespace
}  // namespace cefd

namespace cefd {
namespace {

TEST(Sender, Retries403InsideTheForbiddenWindowThenDelivers) {
    test::FakeAzure azure;
    azure.script({403, 403});  // a role grant that is still being applied
    test::TempDir dir;
    test::MemorySource source;
    add_batches(source, "g", 1, 7);
    AzureConfig config = config_for(azure, dir);
    config.forbidden_retry_window_ms = 600'000;
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == 1; })) << "acked " << source.acked();
    EXPECT_EQ(read(sender.stats().forbidden_retries), 2U);
    EXPECT_EQ(read(sender.stats().retries), 2U) << "a 403 retry is a retry too";
    EXPECT_EQ(read(sender.stats().dead_lettered_batches), 0U);
    EXPECT_EQ(azure.distinct_rows(), 7U);
    const SendHealth health = sender.sender->health();
    EXPECT_TRUE(health.last_send_ok);
    EXPECT_EQ(health.consecutive_failures, 0U);
    EXPECT_EQ(health.last_error, "");
}

TEST(Sender, DeadLetters403OnceTheForbiddenWindowHasPassed) {
    test::FakeAzure azure;
    azure.set_always(403);
    test::TempDir dir;
    test::MemorySource source;
    add_batches(source, "x", 1, 4);
    AzureConfig config = config_for(azure, dir);
    config.forbidden_retry_window_ms = 300;
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == 1; })) << "acked " << source.acked();
    EXPECT_GE(read(sender.stats().forbidden_retries), 1U);
    EXPECT_EQ(read(sender.stats().dead_lettered_batches), 1U);
    EXPECT_EQ(read(sender.stats().dead_lettered_rows), 4U);
    const SendHealth health = sender.sender->health();
    EXPECT_FALSE(health.last_send_ok);
    EXPECT_GE(health.consecutive_failures, 2U);
    EXPECT_NE(health.last_error.find("Monitoring Metrics Publisher"), std::string::npos) << health.last_error;
    EXPECT_TRUE(health.token_valid);
}

TEST(Sender, HealthShowsTheTokenAndTheLastSuccess) {
    test::FakeAzure azure;
    test::TempDir dir;
    test::MemorySource source;
    add_batches(source, "h", 2, 3);
    RunningSender sender(config_for(azure, dir), source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return source.acked() == 2; }));
    const SendHealth health = sender.sender->health();
    const std::int64_t now_s = wall_clock_ns() / 1'000'000'000;
    EXPECT_TRUE(health.token_valid);
    EXPECT_GT(health.token_expires_unix_s, now_s + 3'000);  // the fake issues 3600 s tokens
    EXPECT_LE(health.token_expires_unix_s, now_s + 3'600);
    EXPECT_TRUE(health.last_send_ok);
    EXPECT_GE(health.last_success_unix_s, now_s - 60);
    EXPECT_EQ(static_cast<std::int64_t>(read(sender.stats().token_expiry_unix_s)), health.token_expires_unix_s);
    MetricsRegistry registry;
    sender.sender->register_metrics(registry);
    EXPECT_EQ(registry.value("send_token_expiry_timestamp_seconds"), static_cast<double>(health.token_expires_unix_s));
    EXPECT_EQ(registry.value("send_forbidden_retries_total"), 0.0);
}

}  // namespace
}  // namespace cefd
