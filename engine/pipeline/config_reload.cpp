// A live reload's view of two configs: each key's value as TOML text (secrets masked), the
// keys that differ, and copying one key's value across; all through the key table.
#include <string>
#include <type_traits>
#include <vector>

#include "engine/pipeline/config.h"
#include "engine/pipeline/config_keys.h"
#include "stages/send/diagnose.h"

namespace cefd {

using namespace config_detail;

namespace {

std::string targets_text(const std::vector<AzureTarget>& targets) {
    std::string out = "[";
    for (const AzureTarget& t : targets) {
        out += out.size() > 1 ? ", " : "";
        out += "{endpoint = " + toml_string(t.endpoint) + ", dcr_id = " + toml_string(t.dcr_id) +
               ", stream = " + toml_string(t.stream) + ", syslog_stream = " + toml_string(t.syslog_stream) +
               ", weight = " + std::to_string(t.weight) + ", max_in_flight = " + std::to_string(t.max_in_flight) + "}";
    }
    return out + "]";
}

}  // namespace

std::string config_value_text(const Config& config, const ConfigKey& info) {
    Config& c = const_cast<Config&>(config);  // the accessors are shared with the reader; nothing is written
    return std::visit(
        [&]<class F>(const F& field) -> std::string {
            if constexpr (std::is_same_v<F, TargetsField>) {
                return targets_text(config.azure.extra_targets);
            } else if constexpr (std::is_same_v<F, EnumField>) {
                const std::uint8_t index = field.ref(c);
                return index < field.names.size() ? toml_string(field.names[index]) : std::to_string(index);
            } else if constexpr (std::is_same_v<F, Secret& (*)(Config&)>) {
                return field(c).empty() ? "\"\"" : "\"***\"";
            } else {
                const auto& value = field(c);
                using T = std::remove_cvref_t<decltype(value)>;
                if constexpr (std::is_same_v<T, bool>) return value ? "true" : "false";
                else if constexpr (std::is_integral_v<T>) return std::to_string(value);
                else if constexpr (std::is_same_v<T, std::string>) return toml_string(value);
                else {
                    std::string out = "[";
                    for (const auto item : value) out += (out.size() > 1 ? ", " : "") + std::to_string(item);
                    return out + "]";
                }
            }
        },
        key_of(info).field);
}

std::vector<ConfigChange> reload_changes(const Config& running, const Config& file) {
    std::vector<ConfigChange> changes;
    for (const ConfigKey& key : config_keys()) {
        std::string before = config_value_text(running, key);
        std::string after = config_value_text(file, key);
        if (key.table == "azure" && key.name == "proxy") {
            // A proxy URL may carry user:password@: the diff reaches the journal.
            if (before == after) continue;
            before = toml_string(redact_url_password(running.azure.proxy));
            after = toml_string(redact_url_password(file.azure.proxy));
        } else if (key.table == "azure" && key.name == "client_certificate_file" && before == after &&
                   running.azure.certificate_files_hash != file.azure.certificate_files_hash) {
            // Renewed in place (same path, new bytes in it or its key file): a change to apply.
            before += " (old contents)";
            after += " (new contents)";
        } else if (key.table == "azure" && key.name == "client_secret") {
            // Printed as "***" either way; a new secret (inline or from client_secret_file) is a change.
            if (running.azure.client_secret.reveal() == file.azure.client_secret.reveal()) continue;
            before = "\"*** (old)\"";
            after = "\"*** (new)\"";
        } else if (before == after) {
            continue;
        }
        changes.push_back(ConfigChange{&key, std::move(before), std::move(after)});
    }
    return changes;
}

void copy_config_value(Config& to, const Config& from, const ConfigKey& info) {
    Config& source = const_cast<Config&>(from);  // read only, through the shared accessors
    std::visit(
        [&]<class F>(const F& field) {
            if constexpr (std::is_same_v<F, TargetsField>) to.azure.extra_targets = from.azure.extra_targets;
            else if constexpr (std::is_same_v<F, EnumField>) field.ref(to) = field.ref(source);
            else field(to) = field(source);
        },
        key_of(info).field);
    if (info.table == "azure" && info.name == "client_certificate_file")
        to.azure.certificate_files_hash = from.azure.certificate_files_hash;
}

}  // namespace cefd
