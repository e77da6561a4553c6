// tools/azure_standin/tls_cert.h: a throw-away self-signed certificate for --tls.
//
// One EC P-256 key and one X.509 v3 certificate, made at start-up. The certificate names
// IP:127.0.0.1, IP:::1 and DNS:localhost and carries basicConstraints CA:TRUE, so the PEM
// written for clients is both the server certificate and the CA file that verifies it.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "engine/result.h"

namespace cefd::standin {

struct X509Free {
    void operator()(X509* cert) const noexcept { X509_free(cert); }
};
struct EvpPkeyFree {
    void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
};

struct SelfSignedCert {
    std::unique_ptr<X509, X509Free> cert;
    std::unique_ptr<EVP_PKEY, EvpPkeyFree> key;
    std::string cert_pem;
};

/// Makes a key and a certificate valid from an hour ago for `valid_days`.
Result<SelfSignedCert> make_self_signed_cert(int valid_days = 30);

}  // namespace cefd::standin
