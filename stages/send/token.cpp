#include "stages/send/token.h"

#include <simdjson.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "engine/log.h"
#include "stages/send/curl_handle.h"

namespace cefd {

namespace {

std::string escape(CURL* curl, const std::string& value) {
    char* escaped = curl_easy_escape(curl, value.data(), static_cast<int>(value.size()));
    std::string out = escaped != nullptr ? escaped : "";
    curl_free(escaped);
    return out;
}

std::string env_or(const char* name, const std::string& fallback) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

std::string read_small_file(const std::string& path) {
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!f) return {};
    std::string out(64 * 1024, '\0');
    out.resize(std::fread(out.data(), 1, out.size(), f.get()));
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' ')) out.pop_back();
    return out;
}

/// "error: description" from an RFC 6749 or IMDS error body, cut short. Entra never echoes
/// the secret or the assertion, so this is safe to log.
std::string describe_error_body(const std::string& body) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(body).get(doc) == simdjson::SUCCESS) {
        std::string_view error;
        std::string_view description;
        // Either may be missing; an empty view then says so.
        if (doc["error"].get(error) != simdjson::SUCCESS) error = {};
        if (doc["error_description"].get(description) != simdjson::SUCCESS) description = {};
        if (!error.empty()) return std::string(error) + ": " + std::string(description.substr(0, 300));
    }
    return body.substr(0, 200);
}

}  // namespace

std::int64_t token_refresh_after_ns(std::int64_t lifetime_s) noexcept {
    const std::int64_t life_ms = lifetime_s * 1000;
    const std::int64_t at_ms = std::max(life_ms / 2, std::min(life_ms * 8 / 10, life_ms - 300'000));
    return at_ms * 1'000'000;
}

TokenProvider::TokenProvider(const AzureConfig& config, std::string client_secret)
    : config_(config), client_secret_(std::move(client_secret)) {}

std::string TokenProvider::endpoint() const {
    if (config_.auth == AzureConfig::Auth::managed_identity) return config_.imds_endpoint;
    const std::string authority = env_or("AZURE_AUTHORITY_HOST", config_.authority_host);
    const std::string tenant = config_.tenant_id.empty() ? env_or("AZURE_TENANT_ID", "") : config_.tenant_id;
    std::string url = authority;
    if (!url.empty() && url.back() == '/') url.pop_back();
    return url + "/" + tenant + "/oauth2/v2.0/token";
}

Result<AccessToken> TokenProvider::fetch() {
    CurlEasy easy;
    CURL* curl = easy.get();
    if (curl == nullptr) return Error{Errc::auth, "curl_easy_init failed"};
    CurlHeaders headers;
    std::string form;  // holds a secret: never logged
    std::string url = endpoint();

    switch (config_.auth) {
        case AzureConfig::Auth::managed_identity:
            url += "?api-version=2018-02-01&resource=" + escape(curl, config_.audience);
            if (!config_.client_id.empty()) url += "&client_id=" + escape(curl, config_.client_id);
            headers.append("Metadata: true");
            // IMDS is link-local and must never be reached through a proxy.
            curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
            break;
        case AzureConfig::Auth::client_secret:
            form = "grant_type=client_credentials&client_id=" + escape(curl, config_.client_id) +
                   "&client_secret=" + escape(curl, client_secret_) + "&scope=" + escape(curl, config_.scope);
            break;
        case AzureConfig::Auth::workload_identity: {
            // Re-read on every request: kubelet rotates the projected token.
            const std::string file = env_or("AZURE_FEDERATED_TOKEN_FILE", "");
            const std::string assertion = read_small_file(file);
            if (assertion.empty())
                return Error{Errc::auth, "workload identity: AZURE_FEDERATED_TOKEN_FILE (" + file +
                                             ") is unset, unreadable or empty"};
            const std::string client_id = config_.client_id.empty() ? env_or("AZURE_CLIENT_ID", "") : config_.client_id;
            form = "grant_type=client_credentials&client_id=" + escape(curl, client_id) +
                   "&client_assertion_type=" +
                   escape(curl, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") +
                   "&client_assertion=" + escape(curl, assertion) + "&scope=" + escape(curl, config_.scope);
            break;
        }
        case AzureConfig::Auth::client_certificate:
            // TODO(#send-cert): RS256 client assertion with x5t; validate() rejects it until then.
            return Error{Errc::auth, "client_certificate auth is not implemented yet"};
        case AzureConfig::Auth::none:
            return AccessToken{};
    }

    std::string body;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!config_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, config_.ca_file.c_str());
    if (!config_.proxy.empty() && config_.auth != AzureConfig::Auth::managed_identity)
        curl_easy_setopt(curl, CURLOPT_PROXY, config_.proxy.c_str());
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config_.connect_timeout_ms));
    // Short, because the sender thread waits for it (see token.h).
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(std::min<std::uint64_t>(15'000, config_.connect_timeout_ms + 5'000ULL)));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &curl_append_to_string);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    if (!form.empty()) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, form.c_str());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(form.size()));
    }

    const CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK)
        return Error{Errc::auth, "token request to " + endpoint() + " failed: " + curl_easy_strerror(rc)};
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200)
        return Error{Errc::auth, static_cast<int>(status),
                     "token endpoint " + endpoint() + " answered " + std::to_string(status) + ": " +
                         describe_error_body(body)};

    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(body).get(doc) != simdjson::SUCCESS)
        return Error{Errc::auth, "token endpoint " + endpoint() + " answered 200 with a body that is not JSON"};
    AccessToken token;
    std::string_view access;
    if (doc["access_token"].get(access) != simdjson::SUCCESS || access.empty())
        return Error{Errc::auth, "token response has no access_token"};
    token.value = std::string(access);
    // Entra sends expires_in as a number, IMDS as a string.
    std::int64_t lifetime = 0;
    std::string_view lifetime_text;
    if (doc["expires_in"].get(lifetime) != simdjson::SUCCESS) {
        if (doc["expires_in"].get(lifetime_text) == simdjson::SUCCESS)
            lifetime = std::strtoll(std::string(lifetime_text).c_str(), nullptr, 10);
    }
    // Without a usable lifetime assume 5 min, so a bad answer costs extra requests, not 401s.
    token.lifetime_s = lifetime > 0 ? lifetime : 300;
    return token;
}

}  // namespace cefd
