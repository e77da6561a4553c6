// engine/config/secret.h: a string that never prints. Logs, metrics and check-config output
// show "***" (or "(empty)"); only the code that must send it calls reveal().
#pragma once

#include <string>
#include <string_view>

namespace cefd {

class Secret {
public:
    Secret() = default;
    explicit Secret(std::string value) : value_(std::move(value)) {}

    [[nodiscard]] bool empty() const noexcept { return value_.empty(); }
    /// The only way to read the value. grep for reveal() to audit where secrets go.
    [[nodiscard]] const std::string& reveal() const noexcept { return value_; }
    [[nodiscard]] std::string_view redacted() const noexcept { return value_.empty() ? "(empty)" : "***"; }

private:
    std::string value_;
};

}  // namespace cefd
