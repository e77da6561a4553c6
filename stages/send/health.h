// stages/send/health.h: HealthBoard, what the sender knows about the Azure side (SendHealth in
// send.h) and the repeated "requests failing" log line.
//
// The sender thread writes it after every finished request and token fetch (note_request,
// publish); any thread reads snapshot(). One mutex, held for a few string copies; never taken
// per row. Strings in it are secret-free: callers pass redacted or fixed text only.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "stages/send/diagnose.h"
#include "stages/send/send.h"

namespace cefd {

class TokenCache;

class HealthBoard {
public:
    explicit HealthBoard(bool needs_token) noexcept : needs_token_(needs_token) {}

    /// A request to `endpoint` ended: a transport error (`curl_error` non-null) or `status`.
    /// A failure is logged once per 30 s while they last, with the count since the last line.
    void note_request(const std::string& endpoint, const char* curl_error, long status);
    /// Publishes the request state and the token state, for snapshot().
    void publish(const TokenCache& token, std::int64_t now_ns);
    /// Any thread. Token validity is judged at the time of the call.
    [[nodiscard]] SendHealth snapshot() const;

private:
    const bool needs_token_;
    // Sender thread only.
    std::uint64_t request_failures_in_row_ = 0;
    std::string request_error_;
    bool last_send_ok_ = false;
    std::int64_t last_success_unix_s_ = 0;
    LogThrottle request_log_{30'000'000'000LL};
    // Shared.
    mutable std::mutex mutex_;
    SendHealth published_;  // guarded by mutex_
};

}  // namespace cefd
