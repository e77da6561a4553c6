// stages/send/token.h: gets and caches the Microsoft Entra ID access token for the Logs
// Ingestion API. Flows: client_secret (client credentials), workload_identity (federated
// token file as client assertion), managed_identity (IMDS), none (tests against open endpoints).
//
// Threads: used by the sender thread only. fetch() blocks for at most the token timeout
// (min(connect + request timeout, 15 s)) on that thread: while it runs no new request starts,
// but requests already in flight are not affected (they complete when the loop resumes). This
// happens once per token lifetime (60-90 min in Azure), ahead of expiry.
//
// Secrets (client secret, assertion, access token) never reach a log line or an Error message.
#pragma once

#include <cstdint>
#include <string>

#include "engine/result.h"
#include "stages/send/send.h"

namespace cefd {

struct AccessToken {
    std::string value;
    std::int64_t lifetime_s = 0;
};

class TokenProvider {
public:
    TokenProvider(const AzureConfig& config, std::string client_secret);

    /// One blocking request to the token endpoint.
    Result<AccessToken> fetch();

    /// The token endpoint (no secrets), for log lines.
    [[nodiscard]] std::string endpoint() const;

private:
    const AzureConfig& config_;
    std::string client_secret_;
};

/// When to refresh a token of `lifetime_s` seconds: at 80 % of its life or 5 min before it
/// expires, whichever is earlier, but never before half of it (short test lifetimes).
std::int64_t token_refresh_after_ns(std::int64_t lifetime_s) noexcept;

}  // namespace cefd
