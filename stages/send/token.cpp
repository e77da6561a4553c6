// stages/send/token.cpp: the token flows (TokenProvider: one request per flow, non-blocking
// on the sender's multi handle or blocking for tools) and the sender's token state machine
// (TokenCache: when to refresh, backoff, the current token).
#include "stages/send/token.h"

#include <simdjson.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <climits>
#include <cstdlib>
#include <memory>

#include "engine/clock.h"
#include "engine/log.h"
#include "stages/send/diagnose.h"

namespace cefd {

namespace {

constexpr const char* default_arc_identity_endpoint = "http://localhost:40342/metadata/identity/oauth2/token";

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

std::string read_small_file(const std::string& path, std::size_t max_bytes) {
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!f) return {};
    std::string out(max_bytes, '\0');
    out.resize(std::fread(out.data(), 1, out.size(), f.get()));
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' ')) out.pop_back();
    return out;
}

/// The value of `name` in an application/x-www-form-urlencoded body, still encoded.
std::string_view form_value(std::string_view form, std::string_view name) {
    for (std::size_t at = 0; at < form.size();) {
        const std::size_t end = std::min(form.find('&', at), form.size());
        const std::string_view pair = form.substr(at, end - at);
        if (pair.size() > name.size() && pair.starts_with(name) && pair[name.size()] == '=')
            return pair.substr(name.size() + 1);
        at = end + 1;
    }
    return {};
}

/// "error: description [AADSTS... (meaning)]" from an RFC 6749 or IMDS error body, cut short.
/// Entra never echoes the secret or the assertion, but a proxy or an impostor may: the form we
/// sent (`form`, holding them) is redacted out of whatever we quote.
std::string describe_error_body(const std::string& body, std::string_view secret, std::string_view form) {
    const std::string_view assertion = form_value(form, "client_assertion");
    const std::string_view encoded_secret = form_value(form, "client_secret");
    std::string described;
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(body).get(doc) == simdjson::SUCCESS) {
        std::string_view error;
        std::string_view description;
        // Either may be missing; an empty view then says so.
        if (doc["error"].get(error) != simdjson::SUCCESS) error = {};
        if (doc["error_description"].get(description) != simdjson::SUCCESS) description = {};
        if (!error.empty()) described = std::string(error) + ": " + std::string(description);
    }
    if (described.empty()) described = body;
    std::string out = redact_secrets(described, {secret, assertion, encoded_secret}, 300);
    if (const std::string aad = explain_aad_error(body); !aad.empty()) out += " [" + aad + "]";
    return out;
}

std::int64_t unix_now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string arc_identity_endpoint(const AzureConfig& config) {
    // The Arc agent exports IDENTITY_ENDPOINT; the config wins when it names one.
    return config.identity_endpoint.empty() ? env_or("IDENTITY_ENDPOINT", default_arc_identity_endpoint)
                                            : config.identity_endpoint;
}

}  // namespace

std::int64_t token_lifetime_s(double expires_in) noexcept {
    // Without a usable lifetime assume 5 min, so a bad answer costs extra requests, not 401s.
    // NaN fails every comparison and lands here too.
    if (!(expires_in >= 1)) return 300;
    // Entra issues 60-90 min tokens; a longer claim is an error or an attack. Bounding it keeps
    // every nanosecond sum below in range (24 h = 8.6e13 ns) and the token refreshed daily.
    if (expires_in > static_cast<double>(max_token_lifetime_s)) return max_token_lifetime_s;
    return static_cast<std::int64_t>(expires_in);
}

std::int64_t token_refresh_after_ns(std::int64_t lifetime_s) noexcept {
    const std::int64_t life_ms = std::clamp<std::int64_t>(lifetime_s, 0, max_token_lifetime_s) * 1000;
    const std::int64_t at_ms = std::max(life_ms / 2, std::min(life_ms * 8 / 10, life_ms - 300'000));
    return at_ms * 1'000'000;
}

Result<std::string> read_arc_key(const std::string& www_authenticate, const std::string& token_dir) {
    // "Basic realm=/var/opt/azcmagent/tokens/<guid>.key"
    const std::size_t at = www_authenticate.find("realm=");
    if (at == std::string::npos)
        return Error{Errc::auth, "arc: the 401 challenge has no realm (WWW-Authenticate: " +
                                     www_authenticate.substr(0, 200) + ")"};
    std::string path = www_authenticate.substr(at + 6);
    while (!path.empty() && (path.back() == ' ' || path.back() == '"' || path.back() == '\r')) path.pop_back();
    if (!path.empty() && path.front() == '"') path.erase(0, 1);
    // The path comes from whoever answered on the identity endpoint's port. Read only a key file
    // in the agent's token directory, so that a rogue listener cannot make us send, say,
    // /etc/shadow as a Basic credential.
    char resolved[PATH_MAX];
    char resolved_dir[PATH_MAX];
    if (::realpath(token_dir.c_str(), resolved_dir) == nullptr)
        return Error{Errc::auth, errno, "arc: token directory " + token_dir + " is missing or unreadable"};
    if (::realpath(path.c_str(), resolved) == nullptr)
        return Error{Errc::auth, errno,
                     "arc: cannot resolve the challenge's key file " + path +
                         " (is cefd's user in the himds group that may read the agent's tokens?)"};
    const std::string file = resolved;
    const std::string dir = std::string(resolved_dir) + "/";
    if (!file.starts_with(dir) || file.find('/', dir.size()) != std::string::npos || !file.ends_with(".key"))
        return Error{Errc::auth, "arc: the challenge names " + path + ", which is not a .key file directly in " +
                                     token_dir + "; refusing to read it"};
    struct stat st {};
    if (::stat(resolved, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 4096 || st.st_size == 0)
        return Error{Errc::auth, "arc: " + file + " is not a regular file of 1 to 4096 bytes"};
    std::string key = read_small_file(file, 4096);
    if (key.empty()) return Error{Errc::auth, errno, "arc: cannot read " + file};
    if (key.find_first_of("\r\n") != std::string::npos)
        return Error{Errc::auth, "arc: " + file + " holds a line break inside the key"};
    return key;
}

TokenProvider::TokenProvider(const AzureConfig& config, std::string client_secret,
                             std::optional<ClientAssertion> certificate)
    : config_(config), client_secret_(std::move(client_secret)), certificate_(std::move(certificate)) {}

std::string TokenProvider::endpoint() const {
    if (config_.auth == AzureConfig::Auth::managed_identity) return config_.imds_endpoint;
    if (config_.auth == AzureConfig::Auth::arc) return arc_identity_endpoint(config_);
    // The workload identity webhook injects AZURE_AUTHORITY_HOST (and AZURE_TENANT_ID); the
    // other flows use the configured authority only, so a sovereign-cloud config cannot be
    // redirected by a stray environment variable.
    const bool workload = config_.auth == AzureConfig::Auth::workload_identity;
    const std::string authority = workload ? env_or("AZURE_AUTHORITY_HOST", config_.authority_host) : config_.authority_host;
    const std::string tenant = config_.tenant_id.empty() && workload ? env_or("AZURE_TENANT_ID", "") : config_.tenant_id;
    std::string url = authority;
    if (!url.empty() && url.back() == '/') url.pop_back();
    return url + "/" + tenant + "/oauth2/v2.0/token";
}

void TokenProvider::set_common_options(TokenRequest& request) const {
    CURL* curl = request.easy.get();
    curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!config_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, config_.ca_file.c_str());
    const bool local_identity =
        config_.auth == AzureConfig::Auth::managed_identity || config_.auth == AzureConfig::Auth::arc;
    if (local_identity) {
        // IMDS is link-local and Arc's endpoint is localhost: never through a proxy.
        curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    } else if (!config_.proxy.empty()) {
        curl_easy_setopt(curl, CURLOPT_PROXY, config_.proxy.c_str());
    }
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config_.connect_timeout_ms));
    // Bounded, so a hung identity endpoint is retried rather than waited on for good.
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(std::min<std::uint64_t>(15'000, config_.connect_timeout_ms + 5'000ULL)));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, request.headers.get());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &curl_append_to_string);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &request.response);
    if (!request.form.empty()) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.form.c_str());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.form.size()));
    } else {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    }
}

Status TokenProvider::prepare(TokenRequest& request) {
    CURL* curl = request.easy.get();
    if (curl == nullptr) return Error{Errc::auth, "curl_easy_init failed"};
    curl_easy_reset(curl);
    request.headers.reset();
    request.form.clear();
    request.response.clear();
    request.arc_answered = false;
    request.url = endpoint();

    const auto client_credentials = [&](const std::string& client_id) {
        return "grant_type=client_credentials&client_id=" + escape(curl, client_id) +
               "&scope=" + escape(curl, config_.scope);
    };
    const auto with_assertion = [&](const std::string& client_id, const std::string& assertion) {
        return client_credentials(client_id) + "&client_assertion_type=" +
               escape(curl, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") +
               "&client_assertion=" + escape(curl, assertion);
    };
    switch (config_.auth) {
        case AzureConfig::Auth::managed_identity:
            request.url += "?api-version=2018-02-01&resource=" + escape(curl, config_.audience);
            if (!config_.client_id.empty()) request.url += "&client_id=" + escape(curl, config_.client_id);
            request.headers.append("Metadata: true");
            break;
        case AzureConfig::Auth::arc:
            // Only the system-assigned identity exists on this path, so no client_id.
            request.url += "?api-version=2020-06-01&resource=" + escape(curl, config_.audience);
            request.headers.append("Metadata: true");
            break;
        case AzureConfig::Auth::client_secret:
            request.form = client_credentials(config_.client_id) + "&client_secret=" + escape(curl, client_secret_);
            break;
        case AzureConfig::Auth::client_certificate: {
            CEFD_ASSERT(certificate_.has_value());  // Sender::create loads it for this auth
            auto assertion = certificate_->make(request.url, config_.client_id, unix_now_s());
            if (!assertion) return assertion.error();
            request.form = with_assertion(config_.client_id, *assertion);
            break;
        }
        case AzureConfig::Auth::workload_identity: {
            // Re-read on every request: kubelet rotates the projected token.
            const std::string file = env_or("AZURE_FEDERATED_TOKEN_FILE", "");
            const std::string assertion = read_small_file(file, 64 * 1024);
            if (assertion.empty())
                return Error{Errc::auth, "workload identity: AZURE_FEDERATED_TOKEN_FILE (" + file +
                                             ") is unset, unreadable or empty"};
            request.form = with_assertion(config_.client_id.empty() ? env_or("AZURE_CLIENT_ID", "") : config_.client_id,
                                          assertion);
            break;
        }
        case AzureConfig::Auth::none:
            return Error{Errc::auth, "auth = none needs no token"};
    }
    set_common_options(request);
    return ok_status();
}

Status TokenProvider::answer_arc_challenge(TokenRequest& request) {
    curl_header* header = nullptr;
    if (curl_easy_header(request.easy.get(), "WWW-Authenticate", 0, CURLH_HEADER, -1, &header) != CURLHE_OK)
        return Error{Errc::auth, 401, "arc: " + endpoint() + " answered 401 without a WWW-Authenticate challenge"};
    auto key = read_arc_key(header->value, config_.arc_token_dir);
    if (!key) return key.error();
    request.headers.append("Authorization: Basic " + *key);
    request.response.clear();
    request.arc_answered = true;
    set_common_options(request);
    return ok_status();
}

Result<std::optional<AccessToken>> TokenProvider::finish(TokenRequest& request, CURLcode rc) {
    if (rc != CURLE_OK)
        return Error{Errc::auth, "token request to " + endpoint() + " failed: " + curl_easy_strerror(rc)};
    long status = 0;
    curl_easy_getinfo(request.easy.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status == 401 && config_.auth == AzureConfig::Auth::arc && !request.arc_answered) {
        if (auto answered = answer_arc_challenge(request); !answered) return answered.error();
        return std::optional<AccessToken>{};
    }
    if (status != 200)
        return Error{Errc::auth, static_cast<int>(status),
                     "token endpoint " + endpoint() + " answered " + std::to_string(status) + ": " +
                         describe_error_body(request.response, client_secret_, request.form)};

    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(request.response).get(doc) != simdjson::SUCCESS)
        return Error{Errc::auth, "token endpoint " + endpoint() + " answered 200 with a body that is not JSON"};
    AccessToken token;
    std::string_view access;
    if (doc["access_token"].get(access) != simdjson::SUCCESS || access.empty())
        return Error{Errc::auth, "token response has no access_token"};
    token.value = std::string(access);
    // Entra sends expires_in as a number, IMDS and Arc as a string. Any number is accepted
    // here (a double, beyond 64 bits); token_lifetime_s() bounds it.
    double lifetime = 0;
    std::int64_t integer = 0;
    std::string_view lifetime_text;
    if (doc["expires_in"].get(integer) == simdjson::SUCCESS) {
        lifetime = static_cast<double>(integer);
    } else if (doc["expires_in"].get(lifetime) != simdjson::SUCCESS) {
        lifetime = doc["expires_in"].get(lifetime_text) == simdjson::SUCCESS
                       ? std::strtod(std::string(lifetime_text.substr(0, 64)).c_str(), nullptr)
                       : 0;
    }
    token.lifetime_s = token_lifetime_s(lifetime);
    request.form.clear();  // drop the secret or assertion as soon as it is spent
    return std::optional<AccessToken>{std::move(token)};
}

Result<AccessToken> TokenProvider::fetch_blocking() {
    TokenRequest request;
    if (auto prepared = prepare(request); !prepared) return prepared.error();
    for (int transfer = 0; transfer < 2; ++transfer) {  // Arc needs two; the others one
        auto done = finish(request, curl_easy_perform(request.easy.get()));
        if (!done) return done.error();
        if (done->has_value()) return std::move(**done);
    }
    return Error{Errc::auth, "token endpoint " + endpoint() + " asked for a third round trip"};
}

namespace {
constexpr std::int64_t ms = 1'000'000;
}  // namespace

TokenCache::TokenCache(const AzureConfig& config, std::string client_secret, std::optional<ClientAssertion> certificate)
    : config_(config), provider_(config, std::move(client_secret), std::move(certificate)) {}

bool TokenCache::usable(std::int64_t now_ns) const noexcept {
    return config_.auth == AzureConfig::Auth::none || (!header_.empty() && now_ns < expires_ns_);
}

CURL* TokenCache::start_if_due(std::int64_t now_ns) {
    if (config_.auth == AzureConfig::Auth::none || in_flight_) return nullptr;
    if (!header_.empty() && now_ns < refresh_ns_) return nullptr;
    if (now_ns < retry_ns_) return nullptr;
    if (auto prepared = provider_.prepare(request_); !prepared) {
        on_failed(prepared.error());
        return nullptr;
    }
    curl_easy_setopt(request_.easy.get(), CURLOPT_PRIVATE, nullptr);
    in_flight_ = true;
    started_ns_ = now_ns;
    return request_.easy.get();
}

bool TokenCache::on_transfer_done(CURLcode rc) {
    in_flight_ = false;
    auto done = provider_.finish(request_, rc);
    if (!done) {
        on_failed(done.error());
        return false;
    }
    if (!done->has_value()) {  // a second round trip (Arc challenge) was prepared
        in_flight_ = true;
        return true;
    }
    const AccessToken& token = **done;
    bump(stats_->token_refreshes);
    if (failures_ > 0)
        CEFD_LOG(info, "send: token fetch works again after %u failures", failures_);
    failures_ = 0;
    last_error_.clear();
    header_ = "Authorization: Bearer " + token.value;
    // Lifetimes count from when the request was sent: Entra's clock starts before our answer.
    // token_lifetime_s() bounded the lifetime to 24 h, so these sums cannot overflow.
    const std::int64_t lifetime_s = std::clamp<std::int64_t>(token.lifetime_s, 1, max_token_lifetime_s);
    expires_ns_ = started_ns_ + lifetime_s * 1'000 * ms;
    refresh_ns_ = started_ns_ + token_refresh_after_ns(lifetime_s);
    expires_unix_s_ = (wall_clock_ns() - (monotonic_ns() - started_ns_)) / 1'000'000'000 + lifetime_s;
    stats_->token_expiry_unix_s.store(static_cast<std::uint64_t>(expires_unix_s_), std::memory_order_relaxed);
    ++generation_;
    CEFD_LOG(info, "send: token from %s valid for %" PRId64 " s", provider_.endpoint().c_str(), lifetime_s);
    return false;
}

void TokenCache::invalidate(std::uint64_t generation) noexcept {
    if (generation != generation_) return;
    refresh_ns_ = 0;
    retry_ns_ = 0;
    expires_ns_ = 0;
    expires_unix_s_ = 0;
    stats_->token_expiry_unix_s.store(0, std::memory_order_relaxed);
}

std::int64_t TokenCache::expires_unix_s(std::int64_t now_ns) const noexcept {
    return usable(now_ns) ? expires_unix_s_ : 0;
}

void TokenCache::on_failed(const Error& error) {
    const std::int64_t now = monotonic_ns();
    bump(stats_->token_errors);
    // A refresh that fails while the old token is valid costs nothing yet: try again soon.
    const std::int64_t delay_ms = std::min<std::int64_t>(30'000, 1'000LL << std::min(failures_++, 5U));
    retry_ns_ = now + delay_ms * ms;
    if (!usable(now)) stats_->token_expiry_unix_s.store(0, std::memory_order_relaxed);  // "no token"
    // The message is secret-free (TokenProvider redacts what it quotes) and short.
    last_error_ = "token: " + error.message.substr(0, 400);
    // Repeated, rate-limited, with the count: a wrong secret, tenant or CA fails every fetch,
    // and the operator must keep seeing it while it does.
    std::uint64_t since_last = 0;
    if (log_throttle_.record(now, since_last))
        CEFD_LOG(error, "send: cannot get a token (%" PRIu64 " failure%s since the last line, %u in a row; next try in %" PRId64
                        " ms): %s%s",
                 since_last, since_last == 1 ? "" : "s", failures_, delay_ms, error.message.c_str(),
                 usable(now) ? "; the current token is still valid" : "; deliveries wait");
}

}  // namespace cefd
