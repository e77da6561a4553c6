// stages/send/diagnose.cpp: secret redaction, the Entra ID error codes we explain, and the
// log rate limiter (see diagnose.h).
#include "stages/send/diagnose.h"

#include <array>
#include <cctype>

namespace cefd {

namespace {

/// Names whose value is a secret, as a form or query parameter (name=value) or a JSON member
/// ("name":"value"). Compared case-insensitively.
constexpr std::array<std::string_view, 7> secret_names = {
    "client_secret", "client_assertion", "assertion", "access_token", "refresh_token", "password", "id_token"};

/// Schemes of an Authorization header whose credentials follow a space.
constexpr std::array<std::string_view, 2> credential_schemes = {"bearer ", "basic "};

bool equal_ignoring_case(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

bool is_name_char(char c) noexcept {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-';
}

/// Where a secret value that starts at `from` ends: at a separator of forms, JSON or headers.
std::size_t value_end(const std::string& text, std::size_t from) noexcept {
    std::size_t end = from;
    while (end < text.size()) {
        const char c = text[end];
        if (c == '&' || c == '"' || c == '\'' || c == ',' || c == ';' || c == '}' || c == '<' ||
            std::isspace(static_cast<unsigned char>(c)) != 0)
            break;
        if (c == '\\' && end + 1 < text.size() && text[end + 1] == '"') break;  // \" inside a JSON string
        ++end;
    }
    return end;
}

void replace_all(std::string& text, std::string_view needle) {
    if (needle.size() < 4) return;  // shorter "secrets" would mangle ordinary words
    for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 3))
        text.replace(at, needle.size(), "***");
}

std::string url_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
            out.push_back(c);
        } else {
            out.push_back('%');
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 15]);
        }
    }
    return out;
}

/// name=value, "name":"value", "name": "value", name: value.
void redact_named_values(std::string& text) {
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (!is_name_char(text[i]) || (i > 0 && is_name_char(text[i - 1]))) continue;
        std::size_t end = i;
        while (end < text.size() && is_name_char(text[end])) ++end;
        const std::string_view name(text.data() + i, end - i);
        bool secret = false;
        for (const auto candidate : secret_names) secret = secret || equal_ignoring_case(name, candidate);
        if (!secret) {
            i = end - 1;
            continue;
        }
        std::size_t v = end;
        if (v < text.size() && (text[v] == '"' || (text[v] == '\\' && v + 1 < text.size() && text[v + 1] == '"')))
            v += text[v] == '"' ? 1 : 2;
        while (v < text.size() && text[v] == ' ') ++v;
        if (v >= text.size() || (text[v] != '=' && text[v] != ':')) {
            i = end - 1;
            continue;
        }
        ++v;
        while (v < text.size() && text[v] == ' ') ++v;
        if (v < text.size() && text[v] == '"') ++v;
        else if (v + 1 < text.size() && text[v] == '\\' && text[v + 1] == '"') v += 2;
        const std::size_t stop = value_end(text, v);
        if (stop > v) text.replace(v, stop - v, "***");
        i = v + 2;
    }
}

void redact_credentials(std::string& text) {
    for (const auto scheme : credential_schemes) {
        for (std::size_t i = 0; i + scheme.size() <= text.size(); ++i) {
            if (!equal_ignoring_case(std::string_view(text).substr(i, scheme.size()), scheme)) continue;
            if (i > 0 && is_name_char(text[i - 1])) continue;
            const std::size_t v = i + scheme.size();
            const std::size_t stop = value_end(text, v);
            // "Bearer" in prose ("a Bearer token is") is followed by a short word; credentials
            // are long. Either way nothing secret is lost by redacting a long word.
            if (stop - v >= 8) text.replace(v, stop - v, "***");
            i = v;
        }
    }
}

}  // namespace

std::string redact_url_password(std::string_view url) {
    const std::size_t scheme = url.find("://");
    const std::size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
    const std::size_t end = std::min(url.size(), url.find_first_of("/?#", start));
    const std::size_t at = url.substr(0, end).rfind('@');
    if (at == std::string_view::npos || at < start) return std::string(url);
    const std::size_t colon = url.substr(0, at).find(':', start);
    if (colon == std::string_view::npos) return std::string(url);
    return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

std::string redact_secrets(std::string_view input, std::initializer_list<std::string_view> literals,
                           std::size_t max_bytes) {
    std::string text(input);
    for (const auto literal : literals) {
        if (literal.empty()) continue;
        replace_all(text, literal);
        replace_all(text, url_encode(literal));
    }
    redact_named_values(text);
    redact_credentials(text);
    if (text.size() > max_bytes) {
        std::size_t cut = max_bytes;
        while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 sequence
        text.resize(cut);
        text += "...";
    }
    for (char& c : text)
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';  // one log line stays one line
    return text;
}

std::string explain_aad_error(std::string_view body) {
    static constexpr struct {
        std::string_view code;
        std::string_view meaning;
    } known[] = {
        {"AADSTS7000215", "the client secret is wrong: use the secret's value, not its id"},
        {"AADSTS7000222", "the client secret has expired: create a new one"},
        {"AADSTS90002", "tenant not found: check azure.tenant_id and azure.authority_host (cloud)"},
        {"AADSTS900023", "tenant id is not valid: check azure.tenant_id"},
        {"AADSTS700016", "application not found in the tenant: check azure.client_id and azure.tenant_id"},
        {"AADSTS700027", "the client assertion's signature is not valid: the certificate is not the one registered on the app"},
        {"AADSTS700024", "the client assertion is outside its validity: check this machine's clock"},
        {"AADSTS500011", "resource not found in the tenant: check azure.scope (cloud)"},
        {"AADSTS70021", "no federated credential matches the workload identity token"},
        {"AADSTS7000112", "the application is disabled"},
        {"AADSTS50034", "the account does not exist in the tenant"},
    };
    const std::size_t at = body.find("AADSTS");
    if (at == std::string_view::npos) return {};
    std::size_t end = at + 6;
    while (end < body.size() && std::isdigit(static_cast<unsigned char>(body[end])) != 0) ++end;
    const std::string_view code = body.substr(at, end - at);
    for (const auto& k : known)
        if (k.code == code) return std::string(code) + " (" + std::string(k.meaning) + ")";
    return std::string(code);
}

const char* explain_ingestion_status(long status) noexcept {
    switch (status) {
        case 400: return "the DCR rejected the body: check the stream's columns and types";
        case 401: return "the token was refused: check that it is for this cloud (scope/audience)";
        case 403: return "the identity lacks \"Monitoring Metrics Publisher\" on the DCR (a new grant can take up to 30 min)";
        case 404: return "unknown DCR or stream: check azure.endpoint, dcr_id (the immutableId) and the stream names";
        case 413: return "a single row is over the service limit";
        case 429: return "throttled by Azure";
        default: return status >= 500 ? "Azure-side error (transient)" : "unexpected answer";
    }
}

bool LogThrottle::record(std::int64_t now_ns, std::uint64_t& failures) noexcept {
    ++since_last_;
    if (logged_ && now_ns - last_ns_ < interval_ns_) return false;
    logged_ = true;
    last_ns_ = now_ns;
    failures = since_last_;
    since_last_ = 0;
    return true;
}

}  // namespace cefd
