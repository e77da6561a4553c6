// stages/send/azure_config.cpp: AzureConfig::validate, the [azure] table's static checks
// (every problem is collected into ConfigErrors; check-config and Sender::create both call it).
#include <string>
#include <vector>

#include "engine/config/config_errors.h"
#include "stages/send/assertion.h"
#include "stages/send/send.h"

namespace cefd {

void AzureConfig::validate(ConfigErrors& errors) const {
    std::vector<const AzureTarget*> all{&target};
    for (const auto& t : extra_targets) all.push_back(&t);
    for (std::size_t i = 0; i < all.size(); ++i) {
        const std::string key = i == 0 ? "azure" : "azure.targets[" + std::to_string(i - 1) + "]";
        const AzureTarget& t = *all[i];
        // TLS is always on; http:// only for loopback test endpoints.
        errors.check(key + ".endpoint",
                     t.endpoint.starts_with("https://") || t.endpoint.starts_with("http://127.0.0.1") ||
                         t.endpoint.starts_with("http://[::1]") || t.endpoint.starts_with("http://localhost"),
                     "must be an https:// URL (the DCR's or DCE's logsIngestion endpoint)");
        errors.check(key + ".dcr_id", t.dcr_id.starts_with("dcr-") && t.dcr_id.size() == 36,
                     "must be the DCR's immutableId: dcr- followed by 32 hex digits");
        errors.check(key + ".stream", !t.stream.empty(), "must not be empty");
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
    errors.check_range<std::uint32_t>("azure.max_in_flight", max_in_flight, 1, 64);
    errors.check_range<std::uint32_t>("azure.connect_timeout_ms", connect_timeout_ms, 100, 120'000);
    errors.check_range<std::uint32_t>("azure.request_timeout_ms", request_timeout_ms, 1'000, 600'000);
    errors.check_range<std::uint32_t>("azure.retry_initial_ms", retry_initial_ms, 1, 60'000);
    errors.check_range<std::uint32_t>("azure.retry_max_ms", retry_max_ms, retry_initial_ms, 3'600'000);
    errors.check("azure.dead_letter_dir", !dead_letter_dir.empty(), "must not be empty");
}

}  // namespace cefd
