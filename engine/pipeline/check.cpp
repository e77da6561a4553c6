// engine/pipeline/check.cpp: `cefd check` (check.h): the order of the steps and which ones are
// skipped after a failure, and the text and JSON output. The steps themselves are in the
// check_*.cpp files that check_steps.h lists.
#include "engine/pipeline/check.h"

#include <cstdio>

#include "engine/pipeline/check_steps.h"
#include "engine/row/row_json.h"

namespace cefd {
namespace {

using namespace check_steps;
using Status_ = CheckStep::Status;

const char* status_name(Status_ status) {
    switch (status) {
        case Status_::pass: return "PASS";
        case Status_::warn: return "WARN";
        case Status_::fail: return "FAIL";
    }
    return "FAIL";
}

bool any_failed(const std::vector<CheckStep>& steps) {
    for (const auto& s : steps) {
        if (s.status == Status_::fail) return true;
    }
    return false;
}

}  // namespace

std::vector<CheckStep> run_checks(const CheckOptions& options) {
    std::vector<CheckStep> steps;
    ConfigErrors errors;
    auto loaded = load_config_file(options.config_path, errors);
    if (!loaded) {
        std::string message = std::to_string(errors.list().size()) + " problem(s): ";
        for (std::size_t i = 0; i < errors.list().size(); ++i) message += (i ? "; " : "") + errors.list()[i];
        steps.push_back({"config", Status_::fail, message, "fix the keys named; deploy/cefd.example.toml documents each"});
        return steps;
    }
    const Config& config = *loaded;
    if (errors.warnings().empty()) {
        steps.push_back({"config", Status_::pass, options.config_path + " is valid", ""});
    } else {
        std::string message =
            options.config_path + " is valid, with " + std::to_string(errors.warnings().size()) + " warning(s): ";
        for (std::size_t i = 0; i < errors.warnings().size(); ++i) message += (i ? "; " : "") + errors.warnings()[i];
        steps.push_back(
            {"config", Status_::warn, message, "change the keys named; deploy/cefd.example.toml documents each"});
    }

    steps.push_back(open_files_step(config));
    if (!options.running) listener_steps(config, steps);
    steps.push_back(sysctl_step(config));
    steps.push_back(uring_step(config));
    steps.push_back(spool_step(config));

    const AzureConfig& azure = config.azure;
    std::vector<AzureTarget> targets = {azure.target};
    targets.insert(targets.end(), azure.extra_targets.begin(), azure.extra_targets.end());
    for (const AzureTarget& target : targets) {
        steps.push_back(connectivity_step("endpoint", azure, target.endpoint + "/"));
    }
    const bool entra = azure.auth == AzureConfig::Auth::client_secret ||
                       azure.auth == AzureConfig::Auth::client_certificate ||
                       azure.auth == AzureConfig::Auth::workload_identity;
    if (entra) {
        steps.push_back(connectivity_step("authority", azure, azure.authority_host + "/"));
    }

    std::string token;
    steps.push_back(token_step(azure, token));
    const bool token_ok = steps.back().status != Status_::fail;

    const std::string marker = make_marker();
    if (token_ok) {
        for (const AzureTarget& target : targets) steps.push_back(ingestion_step(azure, target, token, marker));
    } else {
        steps.push_back({"ingestion", Status_::fail, "not tried: no token", "fix the token step first"});
    }

    if (options.running) {
        running_steps(config, options, marker, steps);
    } else if (any_failed(steps)) {
        // The event would only wait in the spool (or be dead-lettered) behind the failure.
        steps.push_back({"test event", Status_::fail, "not sent: an earlier step failed", "fix the failures above, then run the check again"});
    } else {
        steps.push_back(pipeline_step(config, options, marker));
    }
    return steps;
}

std::string check_steps_json(const std::vector<CheckStep>& steps) {
    std::string out = "[";
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const CheckStep& s = steps[i];
        out += std::string(i ? ",\n " : "") + "{\"step\":\"" + json_escape(s.step) + "\",\"status\":\"" +
               status_name(s.status) + "\",\"message\":\"" + json_escape(s.message) + "\",\"hint\":\"" +
               json_escape(s.hint) + "\"}";
    }
    return out + "]\n";
}

std::string check_steps_text(const std::vector<CheckStep>& steps) {
    std::string out;
    for (const CheckStep& s : steps) {
        out += std::string(status_name(s.status)) + "  " + s.step + ": " + s.message + "\n";
        if (!s.hint.empty()) out += "      fix: " + s.hint + "\n";
    }
    return out;
}

int check_command(const CheckOptions& options) {
    const std::vector<CheckStep> steps = run_checks(options);
    const std::string text = options.json ? check_steps_json(steps) : check_steps_text(steps);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return any_failed(steps) ? 1 : 0;
}

}  // namespace cefd
