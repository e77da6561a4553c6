// stages/send/token.h: gets the Microsoft Entra ID access token for the Logs Ingestion API.
// Flows (reference §2): client_secret and client_certificate (client credentials, with a
// secret or a signed JWT assertion), workload_identity (federated token file as the
// assertion), managed_identity (IMDS), arc (Azure Arc's local identity endpoint: a 401
// challenge names a key file; its content is sent back as Basic credentials), none.
//
// Non-blocking: prepare() sets up a TokenRequest, an easy handle that the sender adds to the
// multi handle it already drives, next to the ingestion requests; finish() reads the answer
// when the transfer is done. An Arc fetch takes two transfers: finish() then prepares the
// second one on the same TokenRequest and returns "not yet". So a token refresh never stalls
// deliveries that still hold a valid token. fetch_blocking() runs the same steps with
// curl_easy_perform, for tools and tests.
//
// Threads: the sender thread only. Secrets (client secret, assertion, Arc key, access token)
// never reach a log line or an Error message.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/result.h"
#include "stages/send/assertion.h"
#include "stages/send/curl_handle.h"
#include "stages/send/diagnose.h"
#include "stages/send/send.h"

namespace cefd {

struct AccessToken {
    std::string value;
    std::int64_t lifetime_s = 0;
};

/// One token fetch in progress. Owned by the sender; it outlives its transfers.
struct TokenRequest {
    CurlEasy easy;
    CurlHeaders headers;
    std::string url;
    std::string form;      // the POST body; holds a secret or an assertion: never logged
    std::string response;  // body, capped at 64 KiB
    bool arc_answered = false;  // Arc: the challenge was answered; this is the second transfer
};

class TokenProvider {
public:
    TokenProvider(const AzureConfig& config, std::string client_secret,
                  std::optional<ClientAssertion> certificate);

    /// Sets `request` up for the first (often only) transfer of a token fetch.
    Status prepare(TokenRequest& request);
    /// After a transfer of `request` finished with `rc`: the token; or nullopt when a second
    /// transfer was prepared on `request` (Arc challenge); or why there is no token.
    Result<std::optional<AccessToken>> finish(TokenRequest& request, CURLcode rc);
    /// prepare/perform/finish until done, on the calling thread (blocks up to 2 x 15 s).
    Result<AccessToken> fetch_blocking();

    /// The token endpoint (no secrets), for log lines.
    [[nodiscard]] std::string endpoint() const;

private:
    void set_common_options(TokenRequest& request) const;
    Status answer_arc_challenge(TokenRequest& request);

    const AzureConfig& config_;
    std::string client_secret_;
    std::optional<ClientAssertion> certificate_;
};

/// The sender's token state machine: holds the current token, decides when to fetch the next
/// one (see token_refresh_after_ns), backs failed fetches off (1 s doubling to 30 s) and drops a
/// token the server refused. The fetch runs as one easy handle on the sender's multi handle
/// (TokenProvider::prepare/finish), so deliveries go on with the current token meanwhile.
/// Owned by the Sender; its thread only. The token itself is never logged.
class TokenCache {
public:
    TokenCache(const AzureConfig& config, std::string client_secret, std::optional<ClientAssertion> certificate);

    void bind(SendStats& stats) noexcept { stats_ = &stats; }
    /// A token is held and not expired (always true for auth = none).
    [[nodiscard]] bool usable(std::int64_t now_ns) const noexcept;
    /// When a fetch is due: prepares it and returns the easy handle to add to the multi handle.
    /// nullptr when none is due, one is in flight, failures are backing off, or it could not be
    /// prepared (counted and logged as a failed fetch).
    CURL* start_if_due(std::int64_t now_ns);
    /// The fetch's transfer finished and was removed from the multi handle. Returns true when a
    /// second transfer was prepared (Arc challenge): add easy() to the multi handle again.
    bool on_transfer_done(CURLcode rc);
    /// The server refused a token of `generation` (401): no new request carries it, and a
    /// fetch is due now. Later 401s for the same token change nothing.
    void invalidate(std::uint64_t generation) noexcept;
    /// Shutdown: the fetch in flight was removed from the multi handle unfinished.
    void abandon() noexcept { in_flight_ = false; }

    [[nodiscard]] CURL* easy() const noexcept { return request_.easy.get(); }
    [[nodiscard]] bool in_flight() const noexcept { return in_flight_; }
    /// When a failed fetch may be tried again (monotonic ns).
    [[nodiscard]] std::int64_t retry_at_ns() const noexcept { return retry_ns_; }
    /// Counts tokens obtained, so a 401 refreshes once per token, not once per request.
    [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }
    /// The whole "Authorization: Bearer ..." header line. Never log it.
    [[nodiscard]] const std::string& header() const noexcept { return header_; }
    /// Unix seconds when the current token expires; 0 when there is none (or it expired).
    [[nodiscard]] std::int64_t expires_unix_s(std::int64_t now_ns) const noexcept;
    /// Fetches failed in a row (0 after a success).
    [[nodiscard]] std::uint32_t failures_in_row() const noexcept { return failures_; }
    /// Why the last fetch failed, secret-free; "" after a success.
    [[nodiscard]] const std::string& last_error() const noexcept { return last_error_; }

private:
    void on_failed(const Error& error);

    const AzureConfig& config_;
    TokenProvider provider_;
    TokenRequest request_;  // in the multi handle while in_flight_
    SendStats* stats_ = nullptr;
    bool in_flight_ = false;
    std::int64_t started_ns_ = 0;
    std::string header_;
    std::uint64_t generation_ = 0;
    std::int64_t expires_ns_ = 0;
    std::int64_t refresh_ns_ = 0;
    std::int64_t retry_ns_ = 0;
    std::uint32_t failures_ = 0;
    std::int64_t expires_unix_s_ = 0;
    std::string last_error_;
    LogThrottle log_throttle_{30'000'000'000LL};  // one line per 30 s while fetches fail
};

/// The longest token lifetime believed: 24 h. Entra issues 60-90 min tokens.
inline constexpr std::int64_t max_token_lifetime_s = 86'400;

/// The lifetime to use for an `expires_in` answer: 300 s when it is missing, not a number or
/// below 1 s; at most max_token_lifetime_s.
std::int64_t token_lifetime_s(double expires_in) noexcept;

/// When to refresh a token of `lifetime_s` seconds: at 80 % of its life or 5 min before it
/// expires, whichever is earlier, but never before half of it (short test lifetimes).
std::int64_t token_refresh_after_ns(std::int64_t lifetime_s) noexcept;

/// Azure Arc: the key file named by a `WWW-Authenticate: Basic realm=<path>` challenge, if it
/// is a regular `.key` file of at most 4096 bytes inside `token_dir` (after resolving links).
Result<std::string> read_arc_key(const std::string& www_authenticate, const std::string& token_dir);

}  // namespace cefd
