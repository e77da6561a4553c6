// Sender against the real stand-in (tools/azure_standin): HTTPS with its generated CA, its
// token endpoints, its ingestion checks and its fault knobs. Skips when the stand-in was not
// built (it is another target; `ninja cefd-azure-standin`).
#include <gtest/gtest.h>
#include <unistd.h>

#include <set>
#include <thread>

#include "stages/send/send.h"
#include <filesystem>

#include "tests/support/support.h"
#include "tests/unit/send/test_cert.h"
#include "tests/unit/send/test_source.h"

namespace cefd {
namespace {

using namespace std::chrono_literals;

constexpr const char* standin_dcr = "dcr-00000000000000000000000000000000";

class Standin {
public:
    explicit Standin(std::vector<std::string> extra) {
        std::vector<std::string> argv{binary(), "--tls", "--out", dir_.file("rows.jsonl"), "--ready-file",
                                      dir_.file("ready")};
        for (auto& a : extra) argv.push_back(std::move(a));
        process_ = std::make_unique<test::Process>(argv, dir_.path(), "standin");
        const bool ready = test::wait_until(10s, [&] { return !test::read_file(dir_.file("ready")).empty(); });
        if (!ready) throw std::runtime_error("stand-in not ready: " + process_->err());
        url_ = test::read_file(dir_.file("ready"));
        while (!url_.empty() && url_.back() == '\n') url_.pop_back();
    }
    static std::string binary() { return test::binary_path("tools/azure_standin/cefd-azure-standin"); }
    static bool built() { return ::access(binary().c_str(), X_OK) == 0; }

    [[nodiscard]] const std::string& url() const { return url_; }
    [[nodiscard]] std::string ca_file() const { return dir_.file("standin-ca.pem"); }
    [[nodiscard]] const test::TempDir& dir() const { return dir_; }
    /// Rows stored (duplicates included) and the distinct ExtID values among them.
    std::pair<std::size_t, std::size_t> rows() const {
        std::set<std::string> ids;
        std::size_t n = 0;
        for (const auto& line : test::read_lines(dir_.file("rows.jsonl"))) {
            if (line.empty()) continue;
            ++n;
            const auto at = line.find("\"ExtID\":\"");
            if (at != std::string::npos) ids.insert(line.substr(at + 9, line.find('"', at + 9) - at - 9));
        }
        return {n, ids.size()};
    }

private:
    test::TempDir dir_;
    std::unique_ptr<test::Process> process_;
    std::string url_;
};

AzureConfig config_for(const Standin& standin) {
    AzureConfig c;
    c.target.endpoint = standin.url();
    c.target.dcr_id = standin_dcr;
    c.auth = AzureConfig::Auth::client_secret;
    c.authority_host = standin.url();
    c.tenant_id = "00000000-0000-0000-0000-000000000000";
    c.client_id = "cefd-test-client";
    c.client_secret = Secret("cefd-test-secret");
    c.ca_file = standin.ca_file();
    c.dead_letter_dir = standin.dir().file("dead-letter");
    c.retry_initial_ms = 50;
    c.retry_max_ms = 500;
    c.drain_timeout_ms = 5'000;
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
    const SendStats& stats() const { return sender->stats(); }
    std::unique_ptr<Sender> sender;
    std::jthread thread;
};

void add_batches(test::MemorySource& source, const std::string& tag, int batches, std::uint32_t rows) {
    for (int b = 0; b < batches; ++b) source.add(test::make_batch(tag + std::to_string(b), rows));
}

#define REQUIRE_STANDIN()                                                               \
    if (!Standin::built()) GTEST_SKIP() << "stand-in not built: " << Standin::binary()

TEST(SenderWithStandin, ClientSecretOverHttpsWithTheStandinCa) {
    REQUIRE_STANDIN();
    Standin standin({});
    test::MemorySource source;
    add_batches(source, "c", 10, 100);
    RunningSender sender(config_for(standin), source);
    ASSERT_TRUE(test::wait_until(15s, [&] { return source.acked() == 10; }))
        << "acked " << source.acked() << " of 10";
    EXPECT_EQ(standin.rows(), std::make_pair(std::size_t{1'000}, std::size_t{1'000}));
    EXPECT_EQ(read(sender.stats().retries), 0U);
}

TEST(SenderWithStandin, RefusesTheServerWithoutItsCa) {
    REQUIRE_STANDIN();
    Standin standin({});
    test::MemorySource source;
    add_batches(source, "x", 1, 1);
    AzureConfig config = config_for(standin);
    config.ca_file.clear();  // the system store does not know the stand-in's certificate
    config.drain_timeout_ms = 100;
    {
        RunningSender sender(config, source);
        ASSERT_TRUE(test::wait_until(10s, [&] { return read(sender.stats().token_errors) >= 1; }));
    }
    EXPECT_EQ(source.acked(), 0U);
    EXPECT_EQ(standin.rows().first, 0U);
}

TEST(SenderWithStandin, ManagedIdentity) {
    REQUIRE_STANDIN();
    Standin standin({});
    test::MemorySource source;
    add_batches(source, "m", 3, 10);
    AzureConfig config = config_for(standin);
    config.auth = AzureConfig::Auth::managed_identity;
    config.imds_endpoint = standin.url() + "/metadata/identity/oauth2/token";
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(15s, [&] { return source.acked() == 3; })) << "acked " << source.acked();
    EXPECT_EQ(standin.rows().second, 30U);
}

TEST(SenderWithStandin, TokenExpiresMidRun) {
    REQUIRE_STANDIN();
    Standin standin({"--token-lifetime-s", "2"});
    test::MemorySource source;
    RunningSender sender(config_for(standin), source);
    for (int wave = 0; wave < 4; ++wave) {
        add_batches(source, "t" + std::to_string(wave) + "-", 2, 10);
        ASSERT_TRUE(test::wait_until(15s, [&] { return source.acked() == static_cast<std::size_t>(2 * wave + 2); }));
        const auto refreshes = read(sender.stats().token_refreshes);
        ASSERT_TRUE(test::wait_until(15s, [&] { return read(sender.stats().token_refreshes) > refreshes; }));
    }
    EXPECT_EQ(standin.rows().second, 80U);
    EXPECT_GE(read(sender.stats().token_refreshes), 4U);
}

TEST(SenderWithStandin, Honours429RetryAfter) {
    REQUIRE_STANDIN();
    Standin standin({"--fault-429-every", "3", "--retry-after-s", "1"});
    test::MemorySource source;
    add_batches(source, "r", 6, 20);
    RunningSender sender(config_for(standin), source);
    ASSERT_TRUE(test::wait_until(20s, [&] { return source.acked() == 6; })) << "acked " << source.acked();
    EXPECT_GE(read(sender.stats().throttled), 1U);
    EXPECT_EQ(standin.rows(), std::make_pair(std::size_t{120}, std::size_t{120}));
}

TEST(SenderWithStandin, RidesOutA5xxBurst) {
    REQUIRE_STANDIN();
    Standin standin({"--fault-500-every", "2"});
    test::MemorySource source;
    add_batches(source, "f", 8, 20);
    RunningSender sender(config_for(standin), source);
    ASSERT_TRUE(test::wait_until(20s, [&] { return source.acked() == 8; })) << "acked " << source.acked();
    EXPECT_GE(read(sender.stats().server_errors), 1U);
    EXPECT_EQ(standin.rows().second, 160U);
}

TEST(SenderWithStandin, ConnectionDropAfterStoreMakesACountedDuplicate) {
    REQUIRE_STANDIN();
    Standin standin({"--fault-drop-every", "3"});
    test::MemorySource source;
    add_batches(source, "d", 6, 10);
    RunningSender sender(config_for(standin), source);
    ASSERT_TRUE(test::wait_until(20s, [&] { return source.acked() == 6; })) << "acked " << source.acked();
    const auto [stored, distinct] = standin.rows();
    EXPECT_EQ(distinct, 60U) << "every row arrived";
    EXPECT_GT(stored, distinct) << "the dropped request was stored, then resent";
    EXPECT_GE(read(sender.stats().network_errors), 1U);
    // Every duplicate is a counted re-send, including libcurl's own silent one on a reused
    // connection that died before answering (send.cpp counts it from curl's debug text).
    EXPECT_EQ(read(sender.stats().retries), (stored - distinct) / 10);
}

TEST(SenderWithStandin, OutageLosesNothing) {
    REQUIRE_STANDIN();
    Standin standin({"--outage-s", "2"});
    test::MemorySource source;
    add_batches(source, "o", 10, 25);
    RunningSender sender(config_for(standin), source);
    ASSERT_TRUE(test::wait_until(25s, [&] { return source.acked() == 10; })) << "acked " << source.acked();
    // The outage answers 503 to the token request too, so either counter shows it.
    EXPECT_GE(read(sender.stats().server_errors) + read(sender.stats().token_errors), 1U);
    EXPECT_EQ(standin.rows(), std::make_pair(std::size_t{250}, std::size_t{250}));
}

TEST(SenderWithStandin, Splits413FromALoweredLimit) {
    REQUIRE_STANDIN();
    const SealedBatch sample = test::make_batch("s", 300);
    Standin standin({"--max-json-bytes", std::to_string(sample.json_bytes / 3)});
    test::MemorySource source;
    add_batches(source, "s", 2, 300);
    RunningSender sender(config_for(standin), source);
    ASSERT_TRUE(test::wait_until(15s, [&] { return source.acked() == 2; })) << "acked " << source.acked();
    EXPECT_GE(read(sender.stats().split_batches), 2U);
    EXPECT_EQ(standin.rows(), std::make_pair(std::size_t{600}, std::size_t{600}));
}

TEST(SenderWithStandin, UnknownDcrIsDeadLettered) {
    REQUIRE_STANDIN();
    Standin standin({});
    test::MemorySource source;
    add_batches(source, "n", 2, 5);
    AzureConfig config = config_for(standin);
    config.target.dcr_id = "dcr-ffffffffffffffffffffffffffffffff";
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(15s, [&] { return source.acked() == 2; }));
    EXPECT_EQ(read(sender.stats().dead_lettered_batches), 2U);
    EXPECT_EQ(standin.rows().first, 0U);
}

TEST(SenderWithStandin, ClientCertificateAssertionIsVerifiedByTheStandin) {
    REQUIRE_STANDIN();
    test::TempDir keys;
    const auto cert = test::make_rsa_cert(keys.path());
    Standin standin({"--client-cert", cert.certificate});
    test::MemorySource source;
    add_batches(source, "k", 3, 10);
    AzureConfig config = config_for(standin);
    config.auth = AzureConfig::Auth::client_certificate;
    config.client_secret = Secret("");
    config.client_certificate_file = cert.certificate;
    config.client_key_file = cert.key;
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(15s, [&] { return source.acked() == 3; })) << "acked " << source.acked();
    EXPECT_EQ(read(sender.stats().token_errors), 0U);
    EXPECT_EQ(standin.rows().second, 30U);
}

TEST(SenderWithStandin, AnAssertionFromAnotherCertificateIsRefused) {
    REQUIRE_STANDIN();
    test::TempDir keys;
    const auto registered = test::make_rsa_cert(keys.path(), "registered");
    const auto other = test::make_rsa_cert(keys.path(), "other");
    Standin standin({"--client-cert", registered.certificate});
    test::MemorySource source;
    add_batches(source, "o", 1, 1);
    AzureConfig config = config_for(standin);
    config.auth = AzureConfig::Auth::client_certificate;
    config.client_secret = Secret("");
    config.client_certificate_file = other.certificate;
    config.client_key_file = other.key;
    config.drain_timeout_ms = 100;
    {
        RunningSender sender(config, source);
        ASSERT_TRUE(test::wait_until(10s, [&] { return read(sender.stats().token_errors) >= 1; }));
    }
    EXPECT_EQ(source.acked(), 0U);
    EXPECT_EQ(standin.rows().first, 0U);
}

TEST(SenderWithStandin, ArcChallengeIsAnsweredFromTheTokenDirectory) {
    REQUIRE_STANDIN();
    test::TempDir tokens;
    Standin standin({"--arc-key-dir", tokens.path()});
    test::MemorySource source;
    add_batches(source, "a", 3, 10);
    AzureConfig config = config_for(standin);
    config.auth = AzureConfig::Auth::arc;
    config.identity_endpoint = standin.url() + "/arc/metadata/identity/oauth2/token";
    config.arc_token_dir = tokens.path();
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(15s, [&] { return source.acked() == 3; })) << "acked " << source.acked();
    EXPECT_EQ(read(sender.stats().token_refreshes), 1U);
    EXPECT_EQ(standin.rows().second, 30U);
}

TEST(SenderWithStandin, ArcRefusesAChallengeOutsideTheTokenDirectory) {
    REQUIRE_STANDIN();
    test::TempDir challenge_dir;
    test::TempDir expected_dir;
    Standin standin({"--arc-key-dir", challenge_dir.path()});
    test::MemorySource source;
    add_batches(source, "x", 1, 1);
    AzureConfig config = config_for(standin);
    config.auth = AzureConfig::Auth::arc;
    config.identity_endpoint = standin.url() + "/arc/metadata/identity/oauth2/token";
    config.arc_token_dir = expected_dir.path();
    config.drain_timeout_ms = 100;
    {
        RunningSender sender(config, source);
        ASSERT_TRUE(test::wait_until(10s, [&] { return read(sender.stats().token_errors) >= 1; }));
    }
    EXPECT_EQ(source.acked(), 0U);
}

TEST(SenderWithStandin, SovereignCloudSettingsAreUsedAsGiven) {
    REQUIRE_STANDIN();
    // A US Gov-like stand-in: only the .us resource is known. Authority, scope and endpoint are
    // set independently; the default (public) scope would be refused.
    Standin standin({"--audience", "https://monitor.azure.us"});
    for (const auto auth : {AzureConfig::Auth::client_secret, AzureConfig::Auth::managed_identity}) {
        test::MemorySource source;
        add_batches(source, auth == AzureConfig::Auth::client_secret ? "us-secret" : "us-mi", 2, 10);
        AzureConfig config = config_for(standin);
        config.auth = auth;
        config.scope = "https://monitor.azure.us//.default";
        config.audience = "https://monitor.azure.us";
        config.imds_endpoint = standin.url() + "/metadata/identity/oauth2/token";
        RunningSender sender(config, source);
        ASSERT_TRUE(test::wait_until(15s, [&] { return source.acked() == 2; })) << "acked " << source.acked();
    }
    EXPECT_EQ(standin.rows().second, 40U);

    test::MemorySource source;
    add_batches(source, "public", 1, 1);
    AzureConfig config = config_for(standin);  // public-cloud scope
    config.drain_timeout_ms = 100;
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(10s, [&] { return read(sender.stats().token_errors) >= 1; }));
    EXPECT_EQ(source.acked(), 0U);
}

TEST(SenderWithStandin, ForbiddenDcrIsDeadLetteredWithItsReason) {
    REQUIRE_STANDIN();
    Standin standin({"--forbid-dcr", standin_dcr});
    test::MemorySource source;
    add_batches(source, "f", 2, 5);
    AzureConfig config = config_for(standin);
    config.forbidden_retry_window_ms = 0;  // dead-letter at the first 403
    RunningSender sender(config, source);
    ASSERT_TRUE(test::wait_until(15s, [&] { return source.acked() == 2; }));
    EXPECT_EQ(read(sender.stats().dead_lettered_batches), 2U);
    std::string meta;
    for (const auto& e : std::filesystem::directory_iterator(standin.dir().file("dead-letter")))
        if (e.path().string().ends_with(".meta.json")) meta = test::read_file(e.path());
    EXPECT_NE(meta.find("\"status\":403"), std::string::npos) << meta;
    EXPECT_NE(meta.find("OperationFailed"), std::string::npos) << meta;
}

}  // namespace
}  // namespace cefd
