// engine/metrics/health.h: the readiness checks behind GET /readyz.
//
// A check is a named function that says whether one part of cefd can do its job now, and why
// not. Pipeline::build registers them (each stage's from what that stage exposes); the metrics
// server evaluates them all on every /readyz request and answers 200 only when every one is ok.
//
// Threads: add() before the metrics server starts (it takes a lock, so later is safe too);
// evaluate() on the metrics thread. A check runs on the metrics thread, so it must only read
// state that is safe to read from another thread (atomics, locked accessors), and be quick: it
// runs once per probe, not on any hot path.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace cefd {

struct ReadyCheck {
    bool ok = true;
    /// Why it failed, or what was seen when it passed ("2 lanes receiving"). One line.
    std::string detail;
};

class ReadinessChecks {
public:
    /// `name` is a short word ("spool"); registering the same name twice is a bug (CEFD_ASSERT).
    void add(std::string name, std::function<ReadyCheck()> check);

    struct Verdict {
        bool ready = true;
        /// "ready\n" or "not ready\n", then one line per check: "<name> ok: <detail>" or
        /// "<name> failed: <detail>", in registration order.
        std::string body;
    };
    [[nodiscard]] Verdict evaluate() const;
    [[nodiscard]] std::size_t size() const;

private:
    struct Entry {
        std::string name;
        std::function<ReadyCheck()> check;
    };
    mutable std::mutex mutex_;
    std::vector<Entry> checks_;
};

}  // namespace cefd
