// stages/send/azure_config.cpp: AzureConfig::validate, the [azure] table's static checks
// (every problem is collected into ConfigErrors; check-config and Sender::create both call it).
// URLs are parsed with libcurl's URL API, so the check sees the host libcurl will connect to.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/config/config_errors.h"
#include "stages/send/assertion.h"
#include "stages/send/diagnose.h"
#include "stages/send/send.h"

namespace cefd {

namespace {

/// What a URL setting may be. Secrets and tokens travel over it, so plain http:// is only for
/// a host that cannot be on the network.
enum class UrlRule : std::uint8_t {
    https,           // https://, or http:// to a loopback host (tests, local relays)
    https_or_imds,   // also http://169.254.169.254 (IMDS is link-local and plain HTTP by design)
    proxy,           // http://, https://, socks4/5: the proxy only tunnels our TLS (CONNECT)
};

struct ParsedUrl {
    std::string scheme;
    std::string host;
    bool has_user = false;
};

std::optional<ParsedUrl> parse_url(const std::string& url) {
    const std::unique_ptr<CURLU, void (*)(CURLU*)> handle(curl_url(), &curl_url_cleanup);
    if (handle == nullptr || curl_url_set(handle.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return std::nullopt;
    ParsedUrl out;
    const auto part = [&](CURLUPart which, std::string& into) {
        char* value = nullptr;
        if (curl_url_get(handle.get(), which, &value, 0) != CURLUE_OK) return false;
        into = value;
        curl_free(value);
        return true;
    };
    if (!part(CURLUPART_SCHEME, out.scheme) || !part(CURLUPART_HOST, out.host)) return std::nullopt;
    std::string user;
    out.has_user = part(CURLUPART_USER, user) && !user.empty();
    return out;
}

/// localhost, 127.0.0.0/8 or ::1: exactly, as a parsed host (not a prefix of the URL text).
bool is_loopback_host(const std::string& host) {
    if (host == "localhost" || host == "[::1]") return true;
    in_addr v4{};
    return inet_pton(AF_INET, host.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

void check_url(ConfigErrors& errors, const std::string& key, const std::string& url, UrlRule rule,
               const char* what) {
    // Messages reach check-config's output, the journal and a failed reload's log line.
    const std::string shown = redact_url_password(url);
    const auto parsed = parse_url(url);
    if (!parsed) {
        errors.add(key, "\"" + shown + "\" is not a URL (" + what + ")");
        return;
    }
    // user@host hides the real host from a reader ("http://127.0.0.1@example.com" goes to
    // example.com) and puts a credential in the config: refused everywhere but the proxy.
    if (parsed->has_user && rule != UrlRule::proxy) {
        errors.add(key, "must not contain user@ (" + shown + " goes to " + parsed->host + ")");
        return;
    }
    const bool loopback = is_loopback_host(parsed->host);
    bool fine = parsed->scheme == "https" || (parsed->scheme == "http" && loopback);
    if (rule == UrlRule::https_or_imds) fine = fine || (parsed->scheme == "http" && parsed->host == "169.254.169.254");
    if (rule == UrlRule::proxy)
        fine = parsed->scheme == "http" || parsed->scheme == "https" || parsed->scheme == "socks4" ||
               parsed->scheme == "socks4a" || parsed->scheme == "socks5" || parsed->scheme == "socks5h";
    if (!fine)
        errors.add(key, rule == UrlRule::proxy
                            ? "\"" + shown + "\": the proxy must be an http://, https:// or socks5:// URL"
                            : "\"" + shown + "\" must be https:// (" + what +
                                  "); http:// only to 127.0.0.1, ::1 or localhost");
}

}  // namespace

void AzureConfig::validate(ConfigErrors& errors) const {
    std::vector<const AzureTarget*> all{&target};
    for (const auto& t : extra_targets) all.push_back(&t);
    for (std::size_t i = 0; i < all.size(); ++i) {
        const std::string key = i == 0 ? "azure" : "azure.targets[" + std::to_string(i - 1) + "]";
        const AzureTarget& t = *all[i];
        // TLS is always on; http:// only for loopback test endpoints.
        check_url(errors, key + ".endpoint", t.endpoint, UrlRule::https, "the DCR's or DCE's logsIngestion endpoint");
        errors.check(key + ".dcr_id", t.dcr_id.starts_with("dcr-") && t.dcr_id.size() == 36,
                     "must be the DCR's immutableId: dcr- followed by 32 hex digits");
        errors.check(key + ".stream", !t.stream.empty(), "must not be empty");
        // Not an error: a DCR could in principle route it, and a config that worked must keep
        // loading. But Azure refuses data on an undeclared stream (404), and only Custom-
        // names can be declared, so such a stream dead-letters every batch sent to it.
        const auto check_declared = [&](const char* name, const std::string& stream, const char* deployed) {
            if (stream.empty() || stream.starts_with("Custom-")) return;
            errors.warn(key + name, "\"" + stream +
                                        "\": the Logs Ingestion API accepts only streams declared in the DCR, "
                                        "which start with Custom-; deploy/azure declares " +
                                        deployed);
        };
        check_declared(".stream", t.stream, "Custom-CommonSecurityLog");
        check_declared(".syslog_stream", t.syslog_stream, "Custom-Syslog");
        errors.check_range<std::uint32_t>(key + ".weight", t.weight, 1, 1000);
        errors.check_range<std::uint32_t>(key + ".max_in_flight", t.max_in_flight, 0, 64);
    }
    switch (auth) {
        case Auth::client_secret:
            errors.check("azure.client_secret", !client_secret.empty() || !client_secret_file.empty(),
                         "auth = \"client_secret\" needs client_secret or client_secret_file");
            [[fallthrough]];
        case Auth::client_certificate:
            errors.check("azure.tenant_id", !tenant_id.empty(), "must be set for this auth");
            errors.check("azure.client_id", !client_id.empty(), "must be set for this auth");
            if (auth == Auth::client_certificate) {
                errors.check("azure.client_certificate_file", !client_certificate_file.empty(),
                             "auth = \"client_certificate\" needs the PEM certificate registered on the app");
                const std::string& key = client_key_file.empty() ? client_certificate_file : client_key_file;
                errors.check(client_key_file.empty() ? "azure.client_certificate_file" : "azure.client_key_file",
                             key.empty() || !readable_by_others(key),
                             key + " holds a private key and is readable by other users: chmod 600 it");
            }
            break;
        case Auth::arc:
            errors.check("azure.arc_token_dir", arc_token_dir.starts_with("/"), "must be an absolute directory");
            break;
        case Auth::managed_identity:
        case Auth::workload_identity:
        case Auth::none: break;
    }
    // The secret or assertion goes to the authority: never in clear text.
    if (auth == Auth::client_secret || auth == Auth::client_certificate || auth == Auth::workload_identity)
        check_url(errors, "azure.authority_host", authority_host, UrlRule::https, "the Entra ID authority");
    if (auth == Auth::managed_identity)
        check_url(errors, "azure.imds_endpoint", imds_endpoint, UrlRule::https_or_imds, "the IMDS token endpoint");
    if (auth == Auth::arc && !identity_endpoint.empty())
        check_url(errors, "azure.identity_endpoint", identity_endpoint, UrlRule::https, "the Arc identity endpoint");
    if (!proxy.empty()) check_url(errors, "azure.proxy", proxy, UrlRule::proxy, "a proxy");
    if (!ca_file.empty()) {
        // libcurl would only say "problem with the SSL CA cert" at the first request.
        struct stat st {};
        if (::stat(ca_file.c_str(), &st) != 0)
            errors.add("azure.ca_file", ca_file + ": " + std::strerror(errno));
        else if (!S_ISREG(st.st_mode))
            errors.add("azure.ca_file", ca_file + " is not a regular file (a PEM bundle)");
        else if (::access(ca_file.c_str(), R_OK) != 0)
            errors.add("azure.ca_file", ca_file + ": " + std::strerror(errno));
    }
    errors.check_range<std::uint32_t>("azure.forbidden_retry_window_ms", forbidden_retry_window_ms, 0, 86'400'000);
    errors.check_range<std::uint32_t>("azure.max_in_flight", max_in_flight, 1, 64);
    errors.check_range<std::uint32_t>("azure.connect_timeout_ms", connect_timeout_ms, 100, 120'000);
    errors.check_range<std::uint32_t>("azure.request_timeout_ms", request_timeout_ms, 1'000, 600'000);
    errors.check_range<std::uint32_t>("azure.retry_initial_ms", retry_initial_ms, 1, 60'000);
    errors.check_range<std::uint32_t>("azure.retry_max_ms", retry_max_ms, retry_initial_ms, 3'600'000);
    errors.check("azure.dead_letter_dir", !dead_letter_dir.empty(), "must not be empty");
}

}  // namespace cefd
