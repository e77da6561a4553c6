#include "engine/metrics/health.h"

#include <algorithm>

#include "engine/log.h"

namespace cefd {

void ReadinessChecks::add(std::string name, std::function<ReadyCheck()> check) {
    std::lock_guard lock(mutex_);
    const bool unique = std::none_of(checks_.begin(), checks_.end(), [&](const Entry& e) { return e.name == name; });
    if (!unique) CEFD_LOG(error, "readiness check \"%s\" registered twice", name.c_str());
    CEFD_ASSERT(unique);
    CEFD_ASSERT(check != nullptr);
    checks_.push_back({std::move(name), std::move(check)});
}

ReadinessChecks::Verdict ReadinessChecks::evaluate() const {
    std::lock_guard lock(mutex_);
    Verdict verdict;
    std::string lines;
    for (const Entry& entry : checks_) {
        const ReadyCheck result = entry.check();
        verdict.ready = verdict.ready && result.ok;
        lines += entry.name;
        lines += result.ok ? " ok" : " failed";
        if (!result.detail.empty()) {
            lines += ": ";
            // One line per check: a detail that came from elsewhere (an error text) stays on it.
            for (const char c : result.detail) lines += (c == '\n' || c == '\r') ? ' ' : c;
        }
        lines += '\n';
    }
    verdict.body = (verdict.ready ? "ready\n" : "not ready\n") + lines;
    return verdict;
}

std::size_t ReadinessChecks::size() const {
    std::lock_guard lock(mutex_);
    return checks_.size();
}

}  // namespace cefd
