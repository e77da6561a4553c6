// stages/send/assertion.h: the signed JWT that a certificate credential presents to Microsoft
// Entra ID instead of a client secret (client_credentials grant with
// client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer).
//
// Format (reference §2.2, Entra "certificate credentials"):
//   header  {"alg":"RS256","typ":"JWT","x5t":<b64url SHA-1 of the DER cert>,
//            "x5t#S256":<b64url SHA-256 of the DER cert>}
//   claims  {"aud":<token URL>,"exp":now+600,"iat":now,"iss":<client id>,"jti":<UUID v4>,
//            "nbf":now,"sub":<client id>}
//   signature RSASSA-PKCS1-v1_5 with SHA-256 over base64url(header) "." base64url(claims).
// Entra accepts RS256 and PS256 for certificate credentials; RS256 is what every SDK sent for
// years and what AD FS-era certificates are registered for.
//
// Lifecycle: load() once at start-up (reads the PEM files, checks the key's permissions and
// that key and certificate belong together). make() is called once per token request, on the
// sender thread; it allocates (a few hundred bytes), which is fine once an hour.
// Secrets: the private key never leaves this object; the assertion is a bearer credential for
// ten minutes and is never logged.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "engine/result.h"

namespace cefd {

class ClientAssertion {
public:
    /// Seconds an assertion stays valid (its exp - nbf). Entra allows a few minutes of skew.
    static constexpr std::int64_t lifetime_s = 600;

    /// Reads a PEM certificate (the first one, if the file holds a chain) and a PEM RSA private
    /// key. An empty `key_file` means the key is in `certificate_file` too. The file holding the
    /// key must not be readable by other users (chmod 600 or 640).
    static Result<ClientAssertion> load(const std::string& certificate_file, const std::string& key_file);

    /// A fresh assertion for `audience` (the token endpoint URL), issued by `client_id`.
    [[nodiscard]] Result<std::string> make(std::string_view audience, std::string_view client_id,
                                           std::int64_t now_unix_s) const;

    /// base64url SHA-1 / SHA-256 of the DER certificate: the x5t and x5t#S256 header values.
    /// The SHA-1 one, in hex, is the "thumbprint" the Azure portal shows.
    [[nodiscard]] const std::string& x5t() const noexcept { return x5t_; }
    [[nodiscard]] const std::string& x5t_s256() const noexcept { return x5t_s256_; }

private:
    struct KeyFree {
        void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
    };
    std::unique_ptr<EVP_PKEY, KeyFree> key_;
    std::string x5t_;
    std::string x5t_s256_;
};

/// base64url without padding (RFC 7515 §2).
std::string base64url_encode(std::string_view bytes);

/// True when `path` exists and its mode lets users other than owner and group read it.
bool readable_by_others(const std::string& path);

}  // namespace cefd
