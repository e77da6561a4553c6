// stages/send/diagnose.h: what the send stage says to the operator about a failure, and what
// it must never say. Pure functions and a small rate limiter; any thread.
//
// - redact_secrets(): every response body, challenge or error text that reaches a log line,
//   an Error message, SendHealth or a dead letter goes through it first. A token endpoint or a
//   proxy that echoes the request puts the form (client_secret=..., client_assertion=...) or
//   the Authorization header into its answer; those values become "***".
// - explain_azure_error(): the Entra ID (AADSTS...) code found in a token error and its usual
//   cause, or the meaning of an ingestion status, in one short secret-free phrase.
// - LogThrottle: one line per interval for a failure that repeats, with the number of
//   failures since the previous line, so a broken setup keeps saying so without flooding.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace cefd {

/// `text` with the values of secret-bearing parameters and headers (client_secret,
/// client_assertion, assertion, access_token, refresh_token, password, Bearer/Basic
/// credentials) and every occurrence of each non-empty string in `literals` (raw and
/// URL-encoded) replaced by ***. Then cut to `max_bytes` (at a UTF-8 boundary).
std::string redact_secrets(std::string_view text, std::initializer_list<std::string_view> literals = {},
                           std::size_t max_bytes = 300);

/// `url` with the password of a `user:password@` part replaced by *** (the user stays, so an
/// operator can still tell which account): for proxy URLs in messages and the reload diff.
std::string redact_url_password(std::string_view url);

/// "AADSTS7000215 (the client secret is wrong or expired)" for a token error body that names
/// a known code; "AADSTS12345" for an unknown one; "" when there is none.
std::string explain_aad_error(std::string_view body);

/// The usual cause of an ingestion answer, for logs and SendHealth.
const char* explain_ingestion_status(long status) noexcept;

/// At most one line per interval; counts what it held back.
class LogThrottle {
public:
    explicit LogThrottle(std::int64_t interval_ns) noexcept : interval_ns_(interval_ns) {}
    /// Records one failure at `now_ns`. True when a line is due; then `failures` is the count
    /// of failures since the previous line (this one included).
    bool record(std::int64_t now_ns, std::uint64_t& failures) noexcept;

private:
    std::int64_t interval_ns_;
    std::int64_t last_ns_ = 0;
    bool logged_ = false;
    std::uint64_t since_last_ = 0;
};

}  // namespace cefd
