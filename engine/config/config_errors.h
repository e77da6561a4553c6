// engine/config/config_errors.h: collects every problem found in a config, so that
// `cefd check-config` and start-up print them all at once (exit 2), each with its key's full
// name ("receive.udp_port: must be between 1 and 65535").
//
// Warnings are kept apart: a value that loads and runs but is probably not what was meant (a
// stream Azure will refuse). They never make a config invalid; check-config, `cefd check`,
// start-up and reload print them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cefd {

class ConfigErrors {
public:
    void add(std::string_view key, std::string_view problem) {
        errors_.push_back(std::string(key) + ": " + std::string(problem));
    }
    void check(std::string_view key, bool ok, std::string_view problem) {
        if (!ok) add(key, problem);
    }
    void warn(std::string_view key, std::string_view advice) {
        warnings_.push_back(std::string(key) + ": " + std::string(advice));
    }
    template <class T>
    void check_range(std::string_view key, T value, T min, T max) {
        if (value < min || value > max)
            add(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                         " (got " + std::to_string(value) + ")");
    }

    /// Problems reported under `old_key` (an alias, or a stage's own name for a key) are
    /// reported under `new_key` instead, so every message names the key as documented.
    void rename_key(std::string_view old_key, std::string_view new_key) {
        const std::string prefix = std::string(old_key) + ":";
        for (auto* messages : {&errors_, &warnings_})
            for (auto& message : *messages)
                if (message.starts_with(prefix)) message = std::string(new_key) + message.substr(old_key.size());
    }

    /// No problems (warnings do not count).
    [[nodiscard]] bool empty() const noexcept { return errors_.empty(); }
    [[nodiscard]] const std::vector<std::string>& list() const noexcept { return errors_; }
    [[nodiscard]] const std::vector<std::string>& warnings() const noexcept { return warnings_; }

private:
    std::vector<std::string> errors_;
    std::vector<std::string> warnings_;
};

}  // namespace cefd
