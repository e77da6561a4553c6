// tools/azure_standin/assertion_check.h: checks a client assertion (the JWT a certificate or
// federated credential presents to the token endpoint) the way Entra ID does, with Entra's
// AADSTS codes in the refusals.
//
// Always: three base64url parts, JSON header and claims, iss = sub = client id (AADSTS700021),
// exp in the future and nbf not ahead of now + 5 min skew (AADSTS700024), an x5t or x5t#S256
// header (AADSTS700027). With a certificate (--client-cert): alg RS256 or PS256, the x5t (SHA-1)
// or x5t#S256 thumbprint must be the certificate's (AADSTS700027 "key was not found"), the
// signature must verify with its public key (AADSTS700027), aud must be this stand-in's token
// URL for the tenant (AADSTS700023), and jti must be present. Without one (workload identity
// tests send unsigned tokens) signatures are not checked.
//
// Thread-safe after load(): verify() is const and OpenSSL's verify calls are re-entrant.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "engine/result.h"

namespace cefd::standin {

struct AssertionVerdict {
    int status = 200;          // 200 accepted, else the HTTP status of the refusal
    std::string error;         // RFC 6749 "error"
    std::string description;   // "AADSTS...: ..."
    [[nodiscard]] bool ok() const noexcept { return status == 200; }
};

class AssertionChecker {
public:
    AssertionChecker() = default;  // no certificate: claims and shape only
    /// Reads the PEM certificate whose key must have signed every assertion.
    static Result<AssertionChecker> with_certificate(const std::string& pem_file);

    [[nodiscard]] AssertionVerdict verify(std::string_view assertion, std::string_view expected_audience,
                                          std::string_view client_id, std::int64_t now_unix_s) const;

    /// The certificate's thumbprints (base64url); empty without a certificate.
    [[nodiscard]] const std::string& x5t() const noexcept { return x5t_; }

private:
    struct KeyFree {
        void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
    };
    std::unique_ptr<EVP_PKEY, KeyFree> public_key_;
    std::string x5t_;
    std::string x5t_s256_;
};

std::string base64url_decode(std::string_view text);
std::string base64url_encode(std::string_view bytes);

}  // namespace cefd::standin
