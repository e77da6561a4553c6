// engine/pipeline/check_azure.cpp: `cefd check`'s Azure steps: a token from the configured
// credential (with the fix for each known Entra ID error code), and one direct row per DCR and
// stream, whose HTTP answer names what is wrong (scope, role, DCR id, stream, endpoint).
#include <ctime>
#include <optional>

#include "engine/clock.h"
#include "engine/pipeline/check_steps.h"
#include "stages/send/assertion.h"
#include "stages/send/token.h"

namespace cefd::check_steps {
namespace {

/// The fix for an Entra ID error, from the AADSTS code the token error carries.
std::string token_hint(const std::string& error, const AzureConfig& azure) {
    struct Known {
        const char* code;
        const char* hint;
    };
    static constexpr Known known[] = {
        {"AADSTS7000215", "the client secret is wrong: copy the secret's Value (not its ID) from the app registration's "
                          "Certificates & secrets into azure.client_secret_file"},
        {"AADSTS7000222", "the client secret has expired: create a new one in the app registration"},
        {"AADSTS90002", "azure.tenant_id is not a tenant: copy the Directory (tenant) ID from the app registration"},
        {"AADSTS900023", "azure.tenant_id is not a tenant ID or domain: copy the Directory (tenant) ID"},
        {"AADSTS700016", "azure.client_id is not an application in this tenant: copy the Application (client) ID, "
                         "and check tenant_id"},
        {"AADSTS700027", "the certificate is not registered on the app, or the key does not match it"},
        {"AADSTS700024", "the assertion is not valid yet or expired: sync this machine's clock"},
        {"AADSTS70011", "azure.scope (or audience) is not valid for the Logs Ingestion API"},
        {"invalid_scope", "azure.scope (or audience) is not valid for the Logs Ingestion API"},
    };
    for (const Known& k : known) {
        if (error.find(k.code) != std::string::npos) return k.hint;
    }
    if (azure.auth == AzureConfig::Auth::managed_identity)
        return "is a managed identity assigned to this VM (and azure.client_id its client ID, if user-assigned)?";
    return "see the error above; check azure.authority_host, tenant_id, client_id and the credential";
}

}  // namespace

CheckStep token_step(const AzureConfig& azure, std::string& token) {
    if (azure.auth == AzureConfig::Auth::none) return {"token", StepStatus::pass, "azure.auth = \"none\": no token is sent", ""};
    std::optional<ClientAssertion> certificate;
    if (azure.auth == AzureConfig::Auth::client_certificate) {
        auto loaded_certificate = ClientAssertion::load(azure.client_certificate_file, azure.client_key_file);
        if (!loaded_certificate)
            return {"token", StepStatus::fail, loaded_certificate.error().describe(),
                    "check azure.client_certificate_file and client_key_file"};
        certificate.emplace(std::move(loaded_certificate).value());
    }
    TokenProvider provider(azure, azure.client_secret.reveal(), std::move(certificate));
    auto fetched = provider.fetch_blocking();
    if (!fetched) {
        const std::string error = fetched.error().describe();
        return {"token", StepStatus::fail, "from " + provider.endpoint() + ": " + error, token_hint(error, azure)};
    }
    token = std::move(fetched.value().value);
    return {"token", StepStatus::pass,
            "obtained from " + provider.endpoint() + ", valid for " + std::to_string(fetched.value().lifetime_s) + " s", ""};
}

CheckStep ingestion_step(const AzureConfig& azure, const AzureTarget& target, const std::string& token,
                         const std::string& marker) {
    const std::string step = "ingestion " + target.dcr_id + "/" + target.stream;
    const std::string url = target.endpoint + "/dataCollectionRules/" + target.dcr_id + "/streams/" + target.stream +
                            "?api-version=2023-01-01";
    const std::string now = utc_iso8601(std::time(nullptr));
    const std::string body = std::string("[{\"TimeGenerated\":\"") + now +
                             "\",\"DeviceVendor\":\"cefd\",\"DeviceProduct\":\"cefd check\",\"Activity\":\"cefd check "
                             "direct request\",\"AdditionalExtensions\":\"cefdCheckMarker=" + marker + "\"}]";
    std::vector<std::string> headers = {"Content-Type: application/json"};
    if (!token.empty()) headers.push_back("Authorization: Bearer " + token);
    const Probe probe = http_probe(azure, url, "POST", headers, body);
    if (probe.rc != CURLE_OK)
        return {step, StepStatus::fail, "request failed: " + probe.error, "see the endpoint step above"};
    const std::string answer = "HTTP " + std::to_string(probe.status) + (probe.body.empty() ? "" : ": " + probe.body.substr(0, 300));
    switch (probe.status) {
        case 200:
        case 204:
            return {step, StepStatus::pass, "accepted a test row (marker " + marker + "): " + kql(marker), ""};
        case 401:  // the token is not for this API (audience/scope) or expired
            return {step, StepStatus::fail, answer, "the token was refused: check azure.scope / audience for this cloud"};
        case 403:  // the app lacks the role on the DCR, or a fresh grant has not applied yet
            return {step, StepStatus::fail, answer,
                    "grant the app (azure.client_id) the \"Monitoring Metrics Publisher\" role on the DCR " +
                        target.dcr_id + "; a new role assignment can take up to 30 minutes to apply"};
        case 404:  // a wrong immutable id, stream name, or the DCE of another region
            return {step, StepStatus::fail, answer,
                    "check azure.dcr_id (the DCR's immutable ID, dcr-...), the stream name (" + target.stream +
                        ") declared in the DCR, and that azure.endpoint is the logs ingestion URL of the DCE linked "
                        "to that DCR"};
        case 413:
            return {step, StepStatus::fail, answer, "a proxy limits request sizes"};
        case 429:
        case 500:
        case 502:
        case 503:
            return {step, StepStatus::warn, answer, "Azure is throttling or unavailable right now: run the check again"};
        default:
            return {step, StepStatus::fail, answer, "the DCR refused the request: see its answer"};
    }
}

}  // namespace cefd::check_steps
