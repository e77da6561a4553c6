// The Azure stand-in, driven over real HTTP and HTTPS: token and IMDS flows, accepted batches,
// every rejection reason, limits, faults, /control and /stats.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <libdeflate.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <simdjson.h>

#include "tests/support/support.h"

namespace {

using namespace std::chrono_literals;
using cefd::test::Process;
using cefd::test::TempDir;

constexpr const char* tenant = "00000000-0000-0000-0000-000000000000";
constexpr const char* dcr = "dcr-00000000000000000000000000000000";
constexpr const char* token_form =
    "grant_type=client_credentials&client_id=cefd-test-client&client_secret=cefd-test-secret"
    "&scope=https%3A%2F%2Fmonitor.azure.com%2F%2F.default";
constexpr const char* one_row = R"([{"TimeGenerated":"2026-01-02T03:04:05.123Z","DeviceVendor":"Darktrace"}])";

struct HttpResponse {
    CURLcode code = CURLE_OK;
    long status = 0;
    std::string body;
    std::string headers;
};

std::size_t append_to(char* data, std::size_t size, std::size_t count, void* out) {
    static_cast<std::string*>(out)->append(data, size * count);
    return size * count;
}

HttpResponse http(const std::string& method, const std::string& url, const std::vector<std::string>& headers = {},
                  const std::string& body = {}, const std::string& ca_file = {}) {
    HttpResponse response;
    CURL* curl = curl_easy_init();
    curl_slist* list = nullptr;
    for (const std::string& header : headers) list = curl_slist_append(list, header.c_str());
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (method == "POST") {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_to);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, append_to);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response.headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (!ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file.c_str());
    response.code = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return response;
}

std::string gzip(const std::string& data) {
    libdeflate_compressor* compressor = libdeflate_alloc_compressor(6);
    std::string out(libdeflate_gzip_compress_bound(compressor, data.size()), '\0');
    out.resize(libdeflate_gzip_compress(compressor, data.data(), data.size(), out.data(), out.size()));
    libdeflate_free_compressor(compressor);
    return out;
}

/// A JSON field of a response body, via simdjson's DOM (tests read responses, not rows).
simdjson::dom::element field(simdjson::dom::parser& parser, const std::string& json, const char* pointer) {
    simdjson::dom::element root = parser.parse(json);
    return root.at_pointer(pointer);
}

std::uint64_t stat_value(const std::string& stats_json, const char* pointer) {
    simdjson::dom::parser parser;
    std::uint64_t value = 0;
    if (parser.parse(stats_json).at_pointer(pointer).get(value)) return 0;  // absent = 0
    return value;
}

class StandinProcess {
public:
    explicit StandinProcess(std::vector<std::string> extra = {}, bool tls = false, const std::string& listen = "127.0.0.1") {
        std::vector<std::string> argv{cefd::test::binary_path("tools/azure_standin/cefd-azure-standin"), "--out",
                                      rows_path(), "--ready-file", dir_.file("ready"), "--listen", listen};
        if (tls) argv.emplace_back("--tls");
        argv.insert(argv.end(), extra.begin(), extra.end());
        process_ = std::make_unique<Process>(argv, dir_.path(), "standin");
        const bool ready = cefd::test::wait_until(10s, [&] { return std::filesystem::exists(dir_.file("ready")); });
        EXPECT_TRUE(ready) << "stand-in never wrote its ready file; stderr: " << process_->err();
        url_ = cefd::test::read_file(dir_.file("ready"));
        if (!url_.empty() && url_.back() == '\n') url_.pop_back();
        if (tls) ca_file_ = dir_.file("standin-ca.pem");
    }

    [[nodiscard]] const std::string& url() const { return url_; }
    [[nodiscard]] const std::string& ca_file() const { return ca_file_; }
    [[nodiscard]] std::string rows_path() const { return dir_.file("rows.jsonl"); }
    [[nodiscard]] std::vector<std::string> rows() const {
        return std::filesystem::exists(rows_path()) ? cefd::test::read_lines(rows_path()) : std::vector<std::string>{};
    }
    Process& process() { return *process_; }
    const TempDir& dir() const { return dir_; }

    HttpResponse post_token(const std::string& form, const std::string& tenant_id = tenant) {
        return http("POST", url_ + "/" + tenant_id + "/oauth2/v2.0/token",
                    {"Content-Type: application/x-www-form-urlencoded"}, form, ca_file_);
    }
    std::string token() {
        const HttpResponse response = post_token(token_form);
        EXPECT_EQ(response.status, 200) << response.body;
        simdjson::dom::parser parser;
        std::string_view token;
        EXPECT_FALSE(field(parser, response.body, "/access_token").get(token)) << response.body;
        return std::string(token);
    }
    HttpResponse ingest(const std::string& body, const std::string& token, std::vector<std::string> headers = {},
                        const std::string& stream = "Custom-CommonSecurityLog", const std::string& dcr_id = dcr,
                        const std::string& api_version = "2023-01-01") {
        if (!token.empty()) headers.push_back("Authorization: Bearer " + token);
        bool has_type = false;
        for (const auto& header : headers) has_type = has_type || header.rfind("Content-Type:", 0) == 0;
        if (!has_type) headers.emplace_back("Content-Type: application/json");
        return http("POST", url_ + "/dataCollectionRules/" + dcr_id + "/streams/" + stream + "?api-version=" + api_version,
                    headers, body, ca_file_);
    }
    HttpResponse ingest_gzip(const std::string& json, const std::string& token) {
        return ingest(gzip(json), token, {"Content-Encoding: gzip"});
    }
    std::string stats() { return http("GET", url_ + "/stats", {}, {}, ca_file_).body; }
    HttpResponse control(const std::string& query) { return http("POST", url_ + "/control?" + query, {}, {}, ca_file_); }

private:
    TempDir dir_;
    std::unique_ptr<Process> process_;
    std::string url_;
    std::string ca_file_;
};

std::string base64url(const std::string& data) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t buffer = 0;
    int bits = 0;
    for (const unsigned char c : data) {
        buffer = (buffer << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += alphabet[(buffer >> bits) & 63];
        }
    }
    if (bits > 0) out += alphabet[(buffer << (6 - bits)) & 63];
    return out;
}

// ---- Tokens ----------------------------------------------------------------------------

TEST(StandinToken, ClientSecretFlowIssuesBearerToken) {
    StandinProcess standin;
    const HttpResponse response = standin.post_token(token_form);
    ASSERT_EQ(response.status, 200) << response.body;
    simdjson::dom::parser parser;
    std::string_view type;
    std::uint64_t expires_in = 0;
    ASSERT_FALSE(field(parser, response.body, "/token_type").get(type));
    EXPECT_EQ(type, "Bearer");
    ASSERT_FALSE(field(parser, response.body, "/expires_in").get(expires_in));
    EXPECT_EQ(expires_in, 3600u);
    EXPECT_EQ(stat_value(standin.stats(), "/tokens_issued"), 1u);
}

TEST(StandinToken, RefusesWrongSecretTenantClientScopeAndGrant) {
    StandinProcess standin;
    const std::string base = "grant_type=client_credentials&client_id=cefd-test-client&scope=https%3A%2F%2Fmonitor.azure.com%2F.default";
    EXPECT_EQ(standin.post_token(base + "&client_secret=cefd-test-secret").status, 200);  // single-slash scope works
    const HttpResponse wrong_secret = standin.post_token(base + "&client_secret=nope");
    EXPECT_EQ(wrong_secret.status, 401);
    EXPECT_NE(wrong_secret.body.find("invalid_client"), std::string::npos) << wrong_secret.body;
    EXPECT_EQ(standin.post_token(base + "&client_secret=cefd-test-secret", "other-tenant").status, 400);
    EXPECT_EQ(standin.post_token("grant_type=client_credentials&client_id=someone&client_secret=cefd-test-secret"
                                 "&scope=https%3A%2F%2Fmonitor.azure.com%2F.default").status, 400);
    const HttpResponse bad_scope = standin.post_token(
        "grant_type=client_credentials&client_id=cefd-test-client&client_secret=cefd-test-secret&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default");
    EXPECT_EQ(bad_scope.status, 400);
    EXPECT_NE(bad_scope.body.find("invalid_scope"), std::string::npos) << bad_scope.body;
    EXPECT_EQ(standin.post_token("grant_type=password&client_id=cefd-test-client&client_secret=cefd-test-secret"
                                 "&scope=https%3A%2F%2Fmonitor.azure.com%2F.default").status, 400);
    EXPECT_EQ(stat_value(standin.stats(), "/token_rejected"), 5u);
}

TEST(StandinToken, ClientAssertionWithClientIdClaimsIsAccepted) {
    StandinProcess standin;
    const auto exp = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() + 600;
    const std::string header = base64url(R"({"alg":"RS256","typ":"JWT","x5t":"abc"})");
    const auto assertion = [&](const std::string& subject) {
        return header + "." + base64url(R"({"aud":"https://login.microsoftonline.com/x/oauth2/v2.0/token","iss":"cefd-test-client","sub":")" +
                                        subject + R"(","exp":)" + std::to_string(exp) + "}") + ".c2lnbmF0dXJl";
    };
    const std::string form = "grant_type=client_credentials&client_id=cefd-test-client&scope=https%3A%2F%2Fmonitor.azure.com%2F%2F.default"
                             "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=";
    EXPECT_EQ(standin.post_token(form + assertion("cefd-test-client")).status, 200);
    EXPECT_EQ(standin.post_token(form + assertion("someone-else")).status, 401);
    EXPECT_EQ(standin.post_token(form + "not.a-jwt").status, 401);
}

TEST(StandinImds, RequiresMetadataHeaderAndIssuesUsableToken) {
    StandinProcess standin;
    const std::string url = standin.url() + "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmonitor.azure.com";
    EXPECT_EQ(http("GET", url).status, 400);
    EXPECT_EQ(http("GET", url + "&client_id=someone", {"Metadata: true"}).status, 400);
    EXPECT_EQ(http("GET", standin.url() + "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net",
                   {"Metadata: true"}).status, 400);
    const HttpResponse response = http("GET", url + "&client_id=cefd-test-client", {"Metadata: true"});
    ASSERT_EQ(response.status, 200) << response.body;
    simdjson::dom::parser parser;
    std::string_view expires_in;  // IMDS sends numbers as strings
    std::string_view token;
    ASSERT_FALSE(field(parser, response.body, "/expires_in").get(expires_in)) << response.body;
    EXPECT_EQ(expires_in, "3600");
    ASSERT_FALSE(field(parser, response.body, "/access_token").get(token));
    EXPECT_EQ(standin.ingest(one_row, std::string(token)).status, 204);
}

TEST(StandinToken, WithClientCertAnUnsignedAssertionIsRefusedByThumbprint) {
    // The cert file only needs to be a certificate here; make one with the openssl CLI.
    TempDir keys;
    const std::string cert = keys.file("c.crt");
    ASSERT_EQ(cefd::test::run_command("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=t -days 1 -keyout " +
                                      keys.file("c.key") + " -out " + cert + " 2>/dev/null"),
              0);
    StandinProcess standin({"--client-cert", cert});
    const auto exp = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() + 600;
    const std::string jwt = base64url(R"({"alg":"RS256","typ":"JWT","x5t":"abc"})") + "." +
                            base64url(R"({"aud":")" + standin.url() + "/" + tenant + R"(/oauth2/v2.0/token","iss":"cefd-test-client","sub":"cefd-test-client","jti":"j","exp":)" +
                                      std::to_string(exp) + "}") +
                            ".c2lnbmF0dXJl";
    const HttpResponse refused = standin.post_token(
        "grant_type=client_credentials&client_id=cefd-test-client&scope=https%3A%2F%2Fmonitor.azure.com%2F%2F.default"
        "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=" + jwt);
    EXPECT_EQ(refused.status, 401);
    EXPECT_NE(refused.body.find("AADSTS700027"), std::string::npos) << refused.body;
    EXPECT_NE(refused.body.find("The key was not found"), std::string::npos) << refused.body;
}

TEST(StandinToken, AudienceFlagChangesTheAcceptedScopeAndResource) {
    StandinProcess standin({"--audience", "https://monitor.azure.cn"});
    EXPECT_EQ(standin.post_token(token_form).status, 400);  // the public-cloud scope
    EXPECT_EQ(standin.post_token("grant_type=client_credentials&client_id=cefd-test-client&client_secret=cefd-test-secret"
                                 "&scope=https%3A%2F%2Fmonitor.azure.cn%2F.default").status, 200);
    const std::string imds = standin.url() + "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=";
    EXPECT_EQ(http("GET", imds + "https%3A%2F%2Fmonitor.azure.cn", {"Metadata: true"}).status, 200);
    EXPECT_EQ(http("GET", imds + "https%3A%2F%2Fmonitor.azure.com", {"Metadata: true"}).status, 400);
}

TEST(StandinArc, ChallengesWithAKeyFileAndAcceptsItsContentOnce) {
    TempDir tokens;
    StandinProcess standin({"--arc-key-dir", tokens.path()});
    const std::string url = standin.url() + "/arc/metadata/identity/oauth2/token?api-version=2020-06-01&resource=https%3A%2F%2Fmonitor.azure.com";
    EXPECT_EQ(http("GET", url).status, 400);  // no Metadata header
    const HttpResponse challenge = http("GET", url, {"Metadata: true"});
    ASSERT_EQ(challenge.status, 401) << challenge.body;
    const auto at = challenge.headers.find("Basic realm=");
    ASSERT_NE(at, std::string::npos) << challenge.headers;
    std::string path = challenge.headers.substr(at + 12, challenge.headers.find('\r', at) - at - 12);
    EXPECT_TRUE(path.starts_with(tokens.path() + "/") && path.ends_with(".key")) << path;
    const std::string key = cefd::test::read_file(path);
    ASSERT_FALSE(key.empty());
    EXPECT_EQ(http("GET", url, {"Metadata: true", "Authorization: Basic wrong"}).status, 401);
    const HttpResponse token = http("GET", url, {"Metadata: true", "Authorization: Basic " + key});
    ASSERT_EQ(token.status, 200) << token.body;
    EXPECT_FALSE(std::filesystem::exists(path)) << "a used key file is removed";
    EXPECT_EQ(http("GET", url, {"Metadata: true", "Authorization: Basic " + key}).status, 401) << "one use";
    EXPECT_EQ(stat_value(standin.stats(), "/arc_challenges"), 1u);
}

TEST(StandinIngest, ForbiddenDcrAnswers403OperationFailed) {
    const std::string forbidden = "dcr-11111111111111111111111111111111";
    StandinProcess standin({"--forbid-dcr", forbidden});
    const std::string token = standin.token();
    const HttpResponse refused = standin.ingest(one_row, token, {}, "Custom-CommonSecurityLog", forbidden);
    EXPECT_EQ(refused.status, 403);
    EXPECT_NE(refused.body.find("OperationFailed"), std::string::npos) << refused.body;
    EXPECT_NE(refused.headers.find("x-ms-error-code: OperationFailed"), std::string::npos) << refused.headers;
    EXPECT_EQ(standin.ingest(one_row, token).status, 204);  // the other DCR still works
    EXPECT_EQ(stat_value(standin.stats(), "/rejected/forbidden_dcr"), 1u);
}

// ---- Accepted batches ------------------------------------------------------------------------

TEST(StandinIngest, AcceptedGzipBatchLandsInJsonlAsCompactRows) {
    StandinProcess standin;
    const std::string token = standin.token();
    const std::string body = "[\n  {\"TimeGenerated\": \"2026-01-02T03:04:05Z\", \"DestinationPort\": 443,\n"
                             "   \"DeviceCustomFloatingPoint1\": 1.5, \"SentBytes\": 12345678901, \"Activity\": \"a \\\"quoted\\\" b\"},\n"
                             "  {\"AdditionalExtensions\": \"cefdseq=x-1\"}\n]";
    const HttpResponse response = standin.ingest_gzip(body, token);
    ASSERT_EQ(response.status, 204) << response.body;
    const auto rows = standin.rows();
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0], R"({"TimeGenerated":"2026-01-02T03:04:05Z","DestinationPort":443,"DeviceCustomFloatingPoint1":1.5,"SentBytes":12345678901,"Activity":"a \"quoted\" b"})");
    EXPECT_EQ(rows[1], R"({"AdditionalExtensions":"cefdseq=x-1"})");
    const std::string stats = standin.stats();
    EXPECT_EQ(stat_value(stats, "/accepted_requests"), 1u);
    EXPECT_EQ(stat_value(stats, "/rows"), 2u);
    EXPECT_EQ(stat_value(stats, "/bytes_in"), gzip(body).size());
}

TEST(StandinIngest, UncompressedBodyAndSyslogStreamAreAccepted) {
    StandinProcess standin;
    const std::string token = standin.token();
    const std::string syslog_row =
        R"([{"TimeGenerated":"2026-01-02T03:04:05+01:00","SyslogMessage":"hi","ProcessID":7}])";
    EXPECT_EQ(standin.ingest(one_row, token).status, 204);
    EXPECT_EQ(standin.ingest(syslog_row, token, {}, "Custom-Syslog").status, 204);
    // As in Azure, which takes data only on streams declared in the DCR (Custom-...): the
    // built-in table's own stream name is not one.
    EXPECT_EQ(standin.ingest(syslog_row, token, {}, "Microsoft-Syslog").status, 404);
    EXPECT_EQ(standin.rows().size(), 2u);
}

// The service takes the two preview api-versions other clients still send, and stores rows it
// will change (a value over 64 KB truncated, a stale TimeGenerated replaced). The stand-in
// refused the previews and said nothing of the rest; now it takes them and counts the changes
// in /stats. Found in review against the reference.
TEST(StandinIngest, TakesPreviewApiVersionsAndCountsWhatAzureWouldChange) {
    StandinProcess standin;
    const std::string token = standin.token();
    for (const char* version : {"2021-11-01-preview", "2023-04-01-preview"}) {
        EXPECT_EQ(standin.ingest(R"([{"DeviceVendor":"Darktrace"}])", token, {}, "Custom-CommonSecurityLog", dcr, version)
                      .status,
                  204)
            << version;
    }
    const std::string rows = R"([{"TimeGenerated":"2020-01-02T03:04:05Z","Message":")" + std::string(70'000, 'm') +
                             R"("},{"TimeGenerated":"2020-01-02T03:04:05Z","Activity":null}])";
    ASSERT_EQ(standin.ingest_gzip(rows, token).status, 204);
    const std::string stats = standin.stats();
    EXPECT_EQ(stat_value(stats, "/long_values"), 1u) << stats;
    EXPECT_EQ(stat_value(stats, "/time_generated_out_of_range"), 2u) << stats;
    EXPECT_EQ(stat_value(stats, "/rows"), 4u) << stats;
}

TEST(StandinBench, ChecksOneRequestInNAndSplitsTheRestIntoRows) {
    StandinProcess standin({"--bench-check-every", "2"});
    const std::string token = standin.token();
    const std::string good = R"([{"DeviceVendor":"Darktrace"},{"Activity":"a"}])";
    const std::string unknown_column = R"([{"NotAColumn":"x"}])";
    EXPECT_EQ(standin.ingest_gzip(good, token).status, 204);            // request 1: full checks
    EXPECT_EQ(standin.ingest_gzip(unknown_column, token).status, 204);  // 2: only split
    EXPECT_EQ(standin.ingest_gzip(unknown_column, token).status, 400);  // 3: full checks again
    EXPECT_EQ(standin.ingest_gzip("{\"a\":1}", token).status, 400);      // 4: split refuses a non-array
    const std::string stats = standin.stats();
    EXPECT_EQ(stat_value(stats, "/bench_unchecked_requests"), 2u) << stats;
    EXPECT_EQ(stat_value(stats, "/rows"), 3u) << stats;
    EXPECT_EQ(standin.rows(), (std::vector<std::string>{R"({"DeviceVendor":"Darktrace"})", R"({"Activity":"a"})",
                                                        R"({"NotAColumn":"x"})"}));
}

TEST(StandinIngest, AcceptLogHasOneLineOfRowsAndTimePerAcceptedRequest) {
    TempDir accept_dir;
    const std::string accept_log = accept_dir.file("rows.accept");
    StandinProcess standin({"--accept-log", accept_log});
    const std::string token = standin.token();
    const auto before_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count();
    EXPECT_EQ(standin.ingest_gzip(R"([{"Activity":"a"},{"Activity":"b"}])", token).status, 204);
    EXPECT_EQ(standin.ingest_gzip(R"([{"NotAColumn":"x"}])", token).status, 400);  // refused: no line
    EXPECT_EQ(standin.ingest_gzip(R"([{"Activity":"c"}])", token).status, 204);
    const auto lines = cefd::test::read_lines(accept_log);
    ASSERT_EQ(lines.size(), 2u);
    long long previous_ns = before_ns;
    const char* expected_rows[] = {"2", "1"};
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const std::size_t space = lines[i].find(' ');
        ASSERT_NE(space, std::string::npos) << lines[i];
        EXPECT_EQ(lines[i].substr(0, space), expected_rows[i]);
        const long long ns = std::stoll(lines[i].substr(space + 1));
        EXPECT_GE(ns, previous_ns) << lines[i];
        previous_ns = ns;
    }
    EXPECT_EQ(standin.rows().size(), 3u);
}

// ---- Rejections --------------------------------------------------------------------------------

struct RejectCase {
    const char* reason;
    long status;
    std::string body;
    std::vector<std::string> headers;
    std::string stream = "Custom-CommonSecurityLog";
    std::string dcr_id = dcr;
    std::string api_version = "2023-01-01";
    const char* message_part = "";
    bool gzip_body = false;
};

TEST(StandinIngest, EveryRejectionHasItsReasonStatusAndErrorBody) {
    StandinProcess standin({"--max-body-bytes", "4096", "--max-json-bytes", "2048"});
    const std::string token = standin.token();
    std::string corrupt = gzip(one_row);
    corrupt[corrupt.size() - 6] ^= 0x55;  // CRC32 no longer matches
    std::string big_json = "[";
    for (int i = 0; i < 100; ++i) big_json += std::string(i ? "," : "") + R"({"Activity":"0123456789012345678901234567890123456789"})";
    big_json += "]";
    const std::vector<RejectCase> cases{
        {"unknown_dcr", 404, one_row, {}, "Custom-CommonSecurityLog", "dcr-ffffffffffffffffffffffffffffffff"},
        {"unknown_stream", 404, one_row, {}, "Custom-Other"},
        {"bad_api_version", 400, one_row, {}, "Custom-CommonSecurityLog", dcr, "2022-01-01"},
        {"bad_content_type", 400, one_row, {"Content-Type: text/plain"}},
        {"unsupported_encoding", 400, one_row, {"Content-Encoding: br"}},
        {"body_too_large", 413, std::string(5000, ' ') + one_row, {}, "Custom-CommonSecurityLog", dcr, "2023-01-01", "Maximum allowed content length: 4096"},
        {"bad_gzip", 400, corrupt, {"Content-Encoding: gzip"}},
        {"bad_gzip", 400, one_row, {"Content-Encoding: gzip"}},
        {"json_too_large", 413, big_json, {"Content-Encoding: gzip"}, "Custom-CommonSecurityLog", dcr, "2023-01-01", "", true},
        {"bad_json", 400, R"([{"Activity":"x"})"},
        {"bad_json", 400, R"([{"Activity":"x"}] trailing)"},
        {"not_array", 400, R"({"Activity":"x"})"},
        {"empty_array", 400, "[]"},
        {"not_object", 400, R"([{"Activity":"x"}, 5])", {}, "Custom-CommonSecurityLog", dcr, "2023-01-01", "row 1"},
        {"unknown_column", 400, R"([{"Activty":"x"}])", {}, "Custom-CommonSecurityLog", dcr, "2023-01-01", "Activty"},
        {"unknown_column", 400, R"([{"DeviceVendor":"x"}])", {}, "Custom-Syslog", dcr, "2023-01-01", "DeviceVendor"},
        {"reserved_column", 400, R"([{"TenantId":"x"}])", {}, "Custom-CommonSecurityLog", dcr, "2023-01-01", "TenantId"},
        {"duplicate_column", 400, R"([{"Activity":"x","Activity":"y"}])"},
        {"bad_type", 400, R"([{"DestinationPort":"443"}])", {}, "Custom-CommonSecurityLog", dcr, "2023-01-01", "DestinationPort"},
        {"bad_type", 400, R"([{"DestinationPort":1.5}])"},
        {"bad_type", 400, R"([{"DestinationPort":4294967296}])"},
        {"bad_type", 400, R"([{"TimeGenerated":"yesterday"}])", {}, "Custom-CommonSecurityLog", dcr, "2023-01-01", "TimeGenerated"},
        {"bad_type", 400, R"([{"DeviceCustomFloatingPoint1":"1.5"}])"},
        {"bad_type", 400, R"([{"Activity":[]}])"},
    };
    std::map<std::string, std::uint64_t> expected;
    for (const RejectCase& c : cases) {
        std::vector<std::string> headers = c.headers;
        const HttpResponse response =
            standin.ingest(c.gzip_body ? gzip(c.body) : c.body, token, headers, c.stream, c.dcr_id, c.api_version);
        ++expected[c.reason];
        EXPECT_EQ(response.status, c.status) << c.reason << ": " << response.body;
        EXPECT_NE(response.body.find("{\"error\":{\"code\":"), std::string::npos) << c.reason << ": " << response.body;
        EXPECT_NE(response.body.find(c.message_part), std::string::npos) << c.reason << ": " << response.body;
    }
    const std::string stats = standin.stats();
    for (const auto& [reason, count] : expected) {
        EXPECT_EQ(stat_value(stats, ("/rejected/" + reason).c_str()), count) << reason << " in " << stats;
    }
    EXPECT_EQ(stat_value(stats, "/rejected_requests"), cases.size());
    EXPECT_EQ(stat_value(stats, "/rows"), 0u);
    EXPECT_TRUE(standin.rows().empty());
}

TEST(StandinIngest, MissingUnknownAndExpiredTokensAre401) {
    StandinProcess standin({"--token-lifetime-s", "1"});
    EXPECT_EQ(standin.ingest(one_row, "").status, 401);
    EXPECT_EQ(standin.ingest(one_row, "standin.forged").status, 401);
    const std::string token = standin.token();
    HttpResponse last;
    // The token lives one second; wait for the stand-in to call it expired.
    const bool expired = cefd::test::wait_until(10s, [&] {
        last = standin.ingest(one_row, token);
        return last.status == 401;
    });
    ASSERT_TRUE(expired) << "last status " << last.status << " " << last.body;
    EXPECT_NE(last.body.find("TokenExpired"), std::string::npos) << last.body;
    const std::string stats = standin.stats();
    EXPECT_EQ(stat_value(stats, "/rejected/token_missing"), 1u);
    EXPECT_EQ(stat_value(stats, "/rejected/token_unknown"), 1u);
    EXPECT_EQ(stat_value(stats, "/rejected/token_expired"), 1u);
}

// ---- Faults and control ------------------------------------------------------------------------

TEST(StandinFaults, Every429CarriesRetryAfter) {
    StandinProcess standin({"--fault-429-every", "2", "--retry-after-s", "7"});
    const std::string token = standin.token();
    EXPECT_EQ(standin.ingest(one_row, token).status, 204);
    const HttpResponse throttled = standin.ingest(one_row, token);
    EXPECT_EQ(throttled.status, 429);
    EXPECT_NE(throttled.headers.find("Retry-After: 7"), std::string::npos) << throttled.headers;
    EXPECT_EQ(standin.ingest(one_row, token).status, 204);
    EXPECT_EQ(standin.rows().size(), 2u);
    EXPECT_EQ(stat_value(standin.stats(), "/faults/429"), 1u);
}

TEST(StandinFaults, Every500StoresNothing) {
    StandinProcess standin({"--fault-500-every", "1"});
    EXPECT_EQ(standin.ingest(one_row, standin.token()).status, 500);
    EXPECT_TRUE(standin.rows().empty());
    EXPECT_EQ(stat_value(standin.stats(), "/faults/500"), 1u);
}

TEST(StandinFaults, DropAfterStoringClosesWithoutAnswer) {
    StandinProcess standin({"--fault-drop-every", "1"});
    const HttpResponse response = standin.ingest(one_row, standin.token());
    EXPECT_NE(response.code, CURLE_OK) << "status " << response.status;
    EXPECT_EQ(response.status, 0);
    EXPECT_EQ(standin.rows().size(), 1u);  // stored: a resend would be a duplicate
    EXPECT_EQ(stat_value(standin.stats(), "/faults/drop"), 1u);
}

TEST(StandinFaults, DropBeforeStoringClosesWithoutAnswer) {
    StandinProcess standin({"--fault-drop-before-every", "1"});
    const HttpResponse response = standin.ingest(one_row, standin.token());
    EXPECT_NE(response.code, CURLE_OK) << "status " << response.status;
    EXPECT_TRUE(standin.rows().empty());
    EXPECT_EQ(stat_value(standin.stats(), "/faults/drop_before"), 1u);
}

TEST(StandinFaults, OutageAnswers503UntilControlEndsIt) {
    StandinProcess standin({"--outage-s", "600"});
    EXPECT_EQ(standin.post_token(token_form).status, 503);
    const HttpResponse during = standin.ingest(one_row, "whatever");
    EXPECT_EQ(during.status, 503);
    EXPECT_EQ(standin.control("outage_s=0").status, 200);
    EXPECT_EQ(standin.ingest(one_row, standin.token()).status, 204);
    const std::string stats = standin.stats();
    EXPECT_EQ(stat_value(stats, "/faults/outage"), 2u);
    EXPECT_EQ(stat_value(stats, "/rejected/outage"), 1u);
}

TEST(StandinControl, ChangesOnlyTheGivenKnobsAndRefusesUnknownOnes) {
    StandinProcess standin;
    const std::string token = standin.token();
    const HttpResponse unknown = standin.control("fault_999_every=1");
    EXPECT_EQ(unknown.status, 400);
    EXPECT_NE(unknown.body.find("fault_999_every"), std::string::npos);
    EXPECT_EQ(standin.control("fault_500_every=abc").status, 400);
    const HttpResponse set = standin.control("fault_500_every=1&max_json_bytes=4096");
    ASSERT_EQ(set.status, 200);
    EXPECT_NE(set.body.find("\"fault_500_every\":1"), std::string::npos) << set.body;
    EXPECT_NE(set.body.find("\"max_body_bytes\":1048576"), std::string::npos) << set.body;
    EXPECT_EQ(standin.ingest(one_row, token).status, 500);
    EXPECT_EQ(standin.control("fault_500_every=0").status, 200);
    EXPECT_EQ(standin.ingest(one_row, token).status, 204);
    EXPECT_EQ(standin.control("max_body_bytes=10").status, 200);
    EXPECT_EQ(standin.ingest(one_row, token).status, 413);
}

// ---- TLS and lifecycle -------------------------------------------------------------------------

TEST(StandinTls, HttpsWithGeneratedCaServesTokensAndBatches) {
    StandinProcess standin({}, true);
    ASSERT_EQ(standin.url().rfind("https://127.0.0.1:", 0), 0u) << standin.url();
    ASSERT_TRUE(std::filesystem::exists(standin.ca_file()));
    const std::string token = standin.token();
    ASSERT_FALSE(token.empty());
    EXPECT_EQ(standin.ingest_gzip(one_row, token).status, 204);
    EXPECT_EQ(standin.rows().size(), 1u);
    // Without the CA the client must refuse the certificate: verification is really on.
    const HttpResponse untrusted = http("GET", standin.url() + "/healthz");
    EXPECT_NE(untrusted.code, CURLE_OK);
    // The certificate names localhost too.
    const std::string port = standin.url().substr(standin.url().rfind(':') + 1);
    EXPECT_EQ(http("GET", "https://localhost:" + port + "/healthz", {}, {}, standin.ca_file()).status, 200);
}

TEST(StandinTls, ListensOnIpv6Loopback) {
    const int probe = ::socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_addr = in6addr_loopback;
    const bool has_ipv6 = probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    if (probe >= 0) ::close(probe);
    if (!has_ipv6) GTEST_SKIP() << "no IPv6 loopback on this machine";
    StandinProcess standin({}, true, "::1");
    ASSERT_EQ(standin.url().rfind("https://[::1]:", 0), 0u) << standin.url();
    EXPECT_EQ(standin.ingest(one_row, standin.token()).status, 204);
}

TEST(StandinLifecycle, PrintsUrlAndStopsCleanlyOnSigterm) {
    StandinProcess standin;
    EXPECT_EQ(http("GET", standin.url() + "/healthz").status, 200);
    EXPECT_EQ(standin.process().stop(SIGTERM, 10s), 0);
    EXPECT_EQ(standin.process().out(), "listening " + standin.url() + "\n");
}

TEST(StandinLifecycle, BadFlagsExitWithUsage) {
    TempDir dir;
    Process missing_out({cefd::test::binary_path("tools/azure_standin/cefd-azure-standin")}, dir.path(), "a");
    EXPECT_EQ(missing_out.wait(10s), 2);
    Process unknown({cefd::test::binary_path("tools/azure_standin/cefd-azure-standin"), "--out", dir.file("x"),
                     "--frobnicate", "1"},
                    dir.path(), "b");
    EXPECT_EQ(unknown.wait(10s), 2);
}

// The reference (2.4): IMDS wants exactly "Metadata: true" and an api-version from 2018-02-01
// on. The stand-in lowercased the header and took any api-version, so a client sending
// "Metadata: True" or an old version passed here and would fail against Azure. Found in review.
TEST(StandinImds, EnforcesTheDocumentedHeaderAndApiVersion) {
    StandinProcess standin;
    const std::string base = standin.url() + "/metadata/identity/oauth2/token?resource=https%3A%2F%2Fmonitor.azure.com";
    EXPECT_EQ(http("GET", base + "&api-version=2018-02-01", {"Metadata: true"}).status, 200);
    EXPECT_EQ(http("GET", base + "&api-version=2021-02-01", {"Metadata: true"}).status, 200);
    EXPECT_EQ(http("GET", base + "&api-version=2018-02-01", {"Metadata: True"}).status, 400);
    EXPECT_EQ(http("GET", base + "&api-version=2017-09-01", {"Metadata: true"}).status, 400);
    EXPECT_EQ(http("GET", base + "&api-version=garbage", {"Metadata: true"}).status, 400);
}

// Line n of --accept-log covers rows counted from the start of --out. A stand-in restarted on a
// new --out but the old accept log matched every row to an older acceptance, and verify rounded
// the negative latencies to 0: rows that took 300 ms were reported at 0 ms. Found in review.
TEST(StandinAcceptLog, ARestartOnANewOutFileKeepsLatencyHonest) {
    TempDir shared;
    const std::string accept_log = shared.file("rows.jsonl.accept");
    {
        StandinProcess first({"--accept-log", accept_log});
        const std::string token = first.token();
        ASSERT_EQ(
            first
                .ingest_gzip(
                    R"([{"Activity":"a"},{"Activity":"b"},{"Activity":"c"},{"Activity":"d"},{"Activity":"e"}])", token)
                .status,
            204);
    }
    std::this_thread::sleep_for(1000ms);  // minutes, in real life
    StandinProcess second({"--accept-log", accept_log});
    const std::string token = second.token();
    const long long sent_us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count() -
        300'000;
    const std::string body =
        "[{\"Activity\":\"x\",\"AdditionalExtensions\":\"cefdseq=rv-0;cefdts=" + std::to_string(sent_us) +
        "\"},{\"Activity\":\"y\",\"AdditionalExtensions\":\"cefdseq=rv-1;cefdts=" + std::to_string(sent_us) + "\"}]";
    ASSERT_EQ(second.ingest_gzip(body, token).status, 204);
    Process verify({cefd::test::binary_path("tools/loadgen/cefd-loadgen"), "--verify-only", "--run-id", "rv", "--count",
                    "2", "--verify", second.rows_path(), "--accept-log", accept_log, "--wait-s", "0"},
                   shared.path(), "verify");
    ASSERT_EQ(verify.wait(30s), 0) << verify.out() << verify.err();
    const std::string out = verify.out();
    simdjson::dom::parser parser;
    simdjson::dom::element report = parser.parse(out);
    std::uint64_t samples = 0;
    double p50 = -1;
    EXPECT_FALSE(report["latency_samples"].get(samples)) << out;
    EXPECT_EQ(samples, 2u) << out;
    EXPECT_FALSE(report["latency_p50_ms"].get(p50)) << out;
    EXPECT_GE(p50, 250.0) << "the rows took ~300 ms from send to acceptance: " << out;
}

// The other way round (rows from an earlier run, a new accept log) cannot be matched: refused.
TEST(StandinAcceptLog, AnOldOutFileWithANewAcceptLogIsRefused) {
    TempDir dir;
    cefd::test::write_file(dir.file("rows.jsonl"), "{\"Activity\":\"old\"}\n", 0644);
    Process standin({cefd::test::binary_path("tools/azure_standin/cefd-azure-standin"), "--out", dir.file("rows.jsonl"),
                     "--accept-log", dir.file("new.accept"), "--ready-file", dir.file("ready")},
                    dir.path(), "standin");
    EXPECT_NE(standin.wait(10s), 0);
    EXPECT_NE(standin.err().find("start both anew"), std::string::npos) << standin.err();
}

}  // namespace
