// Identity routes: the Entra ID token endpoint (client secret and client assertion), the tokens
// it issues and their check on ingest, managed identity (IMDS) and Azure Arc's challenge flow.
#include "tools/azure_standin/standin.h"

#include <fcntl.h>
#include <unistd.h>

#include <httplib.h>

#include <cstring>

#include "engine/log.h"
#include "engine/row/row_json.h"
#include "tools/azure_standin/standin_common.h"

namespace cefd::standin {

using namespace detail;

namespace {

/// "YYYY-MM-DD", alone or followed by a suffix such as "-preview".
bool is_api_date(std::string_view version) {
    if (version.size() < 10 || (version.size() > 10 && version[10] != '-')) return false;
    for (std::size_t i = 0; i < 10; ++i) {
        const bool dash = i == 4 || i == 7;
        if (dash ? version[i] != '-' : (version[i] < '0' || version[i] > '9')) return false;
    }
    return true;
}

}  // namespace

std::string Standin::issue_token(std::uint64_t lifetime_s) {
    std::string token = "standin." + random_hex(24);
    const std::int64_t now = now_ns();
    const std::int64_t expiry = now + static_cast<std::int64_t>(lifetime_s) * 1'000'000'000;
    {
        std::lock_guard lock(tokens_mutex_);
        // Bounded: long runs re-issue tokens; forget expired ones once the map gets large.
        if (token_expiry_ns_.size() >= 100'000) {
            std::erase_if(token_expiry_ns_, [now](const auto& entry) { return entry.second <= now; });
        }
        token_expiry_ns_[token] = expiry;
    }
    stats_.tokens_issued.fetch_add(1, std::memory_order_relaxed);
    return token;
}

Reject Standin::check_token(const httplib::Request& request) const {
    const std::string authorization = request.get_header_value("Authorization");
    constexpr std::string_view bearer = "Bearer ";
    if (authorization.size() <= bearer.size() || lowercase(authorization.substr(0, bearer.size())) != "bearer ") {
        return Reject::token_missing;
    }
    const std::string token(trim(std::string_view(authorization).substr(bearer.size())));
    std::lock_guard lock(tokens_mutex_);
    const auto found = token_expiry_ns_.find(token);
    if (found == token_expiry_ns_.end()) return Reject::token_unknown;
    if (found->second <= now_ns()) return Reject::token_expired;
    return Reject::none;
}

void Standin::on_token(const httplib::Request& request, httplib::Response& response) {
    if (in_outage()) {
        stats_.faults[static_cast<std::size_t>(Fault::outage)].fetch_add(1, std::memory_order_relaxed);
        return oauth_error(response, 503, "temporarily_unavailable", "stand-in outage (--outage-s)");
    }
    const auto refuse = [&](int status, std::string_view error, std::string_view description) {
        stats_.token_rejected.fetch_add(1, std::memory_order_relaxed);
        CEFD_LOG_EVERY(1, warn, "azure-standin: token request refused: %s", std::string(description).c_str());
        oauth_error(response, status, error, description);
    };
    const std::string tenant = request.matches[1];
    const auto form = parse_form(request.body);
    const auto field = [&form](const char* name) {
        const auto found = form.find(name);
        return found == form.end() ? std::string{} : found->second;
    };
    if (tenant != options_.tenant_id) {
        return refuse(400, "invalid_request", "AADSTS90002: Tenant '" + tenant + "' not found.");
    }
    if (field("grant_type") != "client_credentials") {
        return refuse(400, "unsupported_grant_type",
                      "AADSTS70003: The app requested an unsupported grant type '" + field("grant_type") + "'.");
    }
    if (field("client_id") != options_.client_id) {
        return refuse(400, "unauthorized_client", "AADSTS700016: Application with identifier '" + field("client_id") +
                                                      "' was not found in the directory.");
    }
    const std::string scope = field("scope");
    if (scope != options_.audience + "/.default" && scope != options_.audience + "//.default") {
        return refuse(400, "invalid_scope", "AADSTS70011: The provided value for the input parameter 'scope' is "
                                            "not valid: '" + scope + "'. Expected " + options_.audience + "/.default.");
    }
    if (form.contains("client_secret")) {
        if (field("client_secret") != options_.client_secret) {
            return refuse(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.");
        }
    } else if (form.contains("client_assertion")) {
        if (field("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
            return refuse(400, "invalid_request", "AADSTS50027: client_assertion_type must be "
                                                  "urn:ietf:params:oauth:client-assertion-type:jwt-bearer.");
        }
        // Signed by --client-cert's key when one is given; the claims and shape always.
        const AssertionVerdict verdict =
            assertion_checker_.verify(field("client_assertion"), base_url_ + "/" + tenant + "/oauth2/v2.0/token",
                                      options_.client_id, unix_now_s());
        if (!verdict.ok()) return refuse(verdict.status, verdict.error, verdict.description);
    } else {
        return refuse(401, "invalid_client",
                      "AADSTS7000216: 'client_assertion', 'client_secret' or 'request' is required.");
    }
    const std::uint64_t lifetime = knobs_.token_lifetime_s.load(std::memory_order_relaxed);
    const std::string token = issue_token(lifetime);
    response.set_content("{\"token_type\":\"Bearer\",\"expires_in\":" + std::to_string(lifetime) +
                             ",\"ext_expires_in\":" + std::to_string(lifetime) + ",\"access_token\":\"" + token +
                             "\"}",
                         "application/json");
}

bool Standin::check_identity_request(const httplib::Request& request, httplib::Response& response,
                                     const char* what) {
    if (in_outage()) {
        stats_.faults[static_cast<std::size_t>(Fault::outage)].fetch_add(1, std::memory_order_relaxed);
        oauth_error(response, 503, "temporarily_unavailable", "stand-in outage (--outage-s)");
        return false;
    }
    const auto refuse = [&](int status, std::string_view error, std::string_view description) {
        stats_.token_rejected.fetch_add(1, std::memory_order_relaxed);
        CEFD_LOG_EVERY(1, warn, "azure-standin: %s request refused: %s", what, std::string(description).c_str());
        oauth_error(response, status, error, description);
        return false;
    };
    // The reference (2.4): the header is exactly "Metadata: true", and any api-version from
    // 2018-02-01 on (YYYY-MM-DD, maybe with a suffix such as -preview) is accepted.
    if (request.get_header_value("Metadata") != "true") {
        return refuse(400, "invalid_request", "Required metadata header not specified");
    }
    if (!request.has_param("api-version")) {
        return refuse(400, "invalid_request", "Required query variable 'api-version' is missing");
    }
    if (const std::string version = request.get_param_value("api-version");
        !is_api_date(version) || version.substr(0, 10) < "2018-02-01") {
        return refuse(400, "invalid_request", "Invalid version of api: '" + version + "'");
    }
    std::string resource = request.get_param_value("resource");
    if (!resource.empty() && resource.back() == '/') resource.pop_back();
    if (resource != options_.audience) {
        return refuse(400, "invalid_resource", "AADSTS500011: The resource principal named '" +
                                                   request.get_param_value("resource") + "' was not found.");
    }
    if (request.has_param("client_id") && request.get_param_value("client_id") != options_.client_id) {
        return refuse(400, "invalid_request", "Identity not found");
    }
    return true;
}

void Standin::answer_identity_token(httplib::Response& response) {
    const std::uint64_t lifetime = knobs_.token_lifetime_s.load(std::memory_order_relaxed);
    const std::string token = issue_token(lifetime);
    const std::int64_t now = unix_now_s();
    // Real IMDS sends every number as a JSON string; cefd must cope with that, so we do too.
    response.set_content("{\"access_token\":\"" + token + "\",\"client_id\":\"" + json_escape(options_.client_id) +
                             "\",\"expires_in\":\"" + std::to_string(lifetime) + "\",\"expires_on\":\"" +
                             std::to_string(now + static_cast<std::int64_t>(lifetime)) + "\",\"ext_expires_in\":\"" +
                             std::to_string(lifetime) + "\",\"not_before\":\"" + std::to_string(now) +
                             "\",\"resource\":\"" + json_escape(options_.audience) +
                             "\",\"token_type\":\"Bearer\"}",
                         "application/json");
}

void Standin::on_imds(const httplib::Request& request, httplib::Response& response) {
    if (!check_identity_request(request, response, "IMDS")) return;
    answer_identity_token(response);
}

void Standin::on_arc(const httplib::Request& request, httplib::Response& response) {
    if (!check_identity_request(request, response, "Arc")) return;
    const auto refuse = [&](int status, std::string_view description) {
        stats_.token_rejected.fetch_add(1, std::memory_order_relaxed);
        CEFD_LOG_EVERY(1, warn, "azure-standin: Arc request refused: %s", std::string(description).c_str());
        oauth_error(response, status, "invalid_request", description);
    };
    const std::string version = request.get_param_value("api-version");
    if (version != "2019-11-01" && version != "2020-06-01") {
        return refuse(400, "Arc supports api-version 2019-11-01 and 2020-06-01, got '" + version + "'");
    }
    const std::string authorization = request.get_header_value("Authorization");
    if (authorization.empty()) {
        // The challenge: a fresh secret in a fresh .key file that only its owner and group may
        // read (the agent's himds group on a real machine).
        const std::string secret = random_hex(32);
        const std::string path = options_.arc_key_dir + "/" + random_hex(16) + ".key";
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        const bool written = fd >= 0 && ::write(fd, secret.data(), secret.size()) == static_cast<ssize_t>(secret.size());
        if (fd >= 0) ::close(fd);
        if (!written) return refuse(500, "stand-in could not write the challenge key file");
        {
            std::lock_guard lock(arc_mutex_);
            if (arc_keys_.size() >= 10'000) arc_keys_.clear();  // bounded; old challenges just fail
            arc_keys_[secret] = path;
        }
        stats_.arc_challenges.fetch_add(1, std::memory_order_relaxed);
        response.status = 401;
        response.set_header("WWW-Authenticate", "Basic realm=" + path);
        response.set_content(R"({"error":"unauthorized_client","error_description":"N/A: the key file is the challenge"})",
                             "application/json");
        return;
    }
    constexpr std::string_view basic = "Basic ";
    if (!authorization.starts_with(basic)) return refuse(401, "Authorization must be 'Basic <key file content>'");
    {
        std::lock_guard lock(arc_mutex_);
        const auto found = arc_keys_.find(authorization.substr(basic.size()));
        if (found == arc_keys_.end()) return refuse(401, "the Basic credential is not a key this endpoint issued");
        ::unlink(found->second.c_str());  // one use, as on a real agent
        arc_keys_.erase(found);
    }
    answer_identity_token(response);
}

}  // namespace cefd::standin
