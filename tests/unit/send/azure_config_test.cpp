// AzureConfig::validate: URLs are parsed (libcurl's URL API), so only a real loopback host may
// use http://; ca_file must be readable.
#include <gtest/gtest.h>
#include <unistd.h>

#include "engine/config/config_errors.h"
#include "stages/send/send.h"
#include "tests/support/support.h"

namespace cefd {
namespace {

AzureConfig valid_config() {
    AzureConfig c;
    c.target.endpoint = "https://x.westeurope-1.ingest.monitor.azure.com";
    c.target.dcr_id = "dcr-0123456789abcdef0123456789abcdef";
    c.tenant_id = "t";
    c.client_id = "c";
    c.client_secret = Secret("s");
    return c;
}

std::string problems(const AzureConfig& c) {
    ConfigErrors errors;
    c.validate(errors);
    std::string all;
    for (const auto& e : errors.list()) all += e + "\n";
    return all;
}

TEST(AzureConfigValidate, AcceptsTheDefaultsAndLoopbackHttp) {
    AzureConfig c = valid_config();
    EXPECT_EQ(problems(c), "");
    for (const char* url : {"http://127.0.0.1:8080", "http://127.5.5.5", "http://localhost:1/x", "http://[::1]:9"}) {
        c.target.endpoint = url;
        c.authority_host = url;
        EXPECT_EQ(problems(c), "") << url;
    }
    c.auth = AzureConfig::Auth::managed_identity;  // the default IMDS endpoint is plain http
    EXPECT_EQ(problems(c), "");
    c.proxy = "http://proxy.corp.example:3128";  // CONNECT tunnels our TLS
    EXPECT_EQ(problems(c), "");
}

TEST(AzureConfigValidate, RefusesAuthorityThatIsNotHttps) {
    AzureConfig c = valid_config();
    for (const char* url : {"http://example.com", "ftp://example.com", "file:///etc/passwd", "login.microsoftonline.com/x",
                            "http://127.0.0.1@example.com", "http://localhost.example.com", "http://127.0.0.1.example.com"}) {
        c.authority_host = url;
        EXPECT_NE(problems(c).find("azure.authority_host"), std::string::npos) << url << " passed";
    }
}

TEST(AzureConfigValidate, RefusesEndpointsThatOnlyLookLikeLoopback) {
    AzureConfig c = valid_config();
    for (const char* url : {"http://127.0.0.1@example.com", "http://localhost.example.com", "http://[::1].example.com",
                            "http://example.com", "ftp://127.0.0.1", "not a url"}) {
        c.target.endpoint = url;
        EXPECT_NE(problems(c).find("azure.endpoint"), std::string::npos) << url << " passed";
    }
    c = valid_config();
    c.extra_targets.push_back(AzureTarget{.endpoint = "http://localhost.evil.example", .dcr_id = c.target.dcr_id});
    EXPECT_NE(problems(c).find("azure.targets[0].endpoint"), std::string::npos);
}

TEST(AzureConfigValidate, ChecksIdentityEndpointsAndProxy) {
    AzureConfig c = valid_config();
    c.auth = AzureConfig::Auth::managed_identity;
    c.imds_endpoint = "http://169.254.169.254.example.com/metadata/identity/oauth2/token";
    EXPECT_NE(problems(c).find("azure.imds_endpoint"), std::string::npos);
    c = valid_config();
    c.auth = AzureConfig::Auth::arc;
    c.identity_endpoint = "http://arc.example.com/metadata/identity/oauth2/token";
    EXPECT_NE(problems(c).find("azure.identity_endpoint"), std::string::npos);
    c.identity_endpoint = "http://localhost:40342/metadata/identity/oauth2/token";
    EXPECT_EQ(problems(c), "");
    c.proxy = "file:///tmp/x";
    EXPECT_NE(problems(c).find("azure.proxy"), std::string::npos);
}

TEST(AzureConfigValidate, ReportsAMissingOrUnreadableCaFile) {
    test::TempDir dir;
    AzureConfig c = valid_config();
    c.ca_file = dir.file("missing.pem");
    EXPECT_NE(problems(c).find("azure.ca_file"), std::string::npos);
    c.ca_file = dir.file("");  // a directory
    EXPECT_NE(problems(c).find("azure.ca_file"), std::string::npos);
    test::write_file(dir.file("ca.pem"), "-----BEGIN CERTIFICATE-----\n", 0600);
    c.ca_file = dir.file("ca.pem");
    EXPECT_EQ(problems(c), "");
    if (::geteuid() != 0) {  // root reads a 000 file anyway
        test::write_file(dir.file("locked.pem"), "x", 0000);
        c.ca_file = dir.file("locked.pem");
        EXPECT_NE(problems(c).find("azure.ca_file"), std::string::npos);
    }
}

TEST(AzureConfigValidate, BoundsTheForbiddenRetryWindow) {
    AzureConfig c = valid_config();
    c.forbidden_retry_window_ms = 0;
    EXPECT_EQ(problems(c), "");
    c.forbidden_retry_window_ms = 100'000'000;
    EXPECT_NE(problems(c).find("azure.forbidden_retry_window_ms"), std::string::npos);
}

}  // namespace
}  // namespace cefd
