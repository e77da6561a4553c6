#include "tools/azure_standin/assertion_check.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <simdjson.h>

#include <cstdio>

namespace cefd::standin {
namespace {

AssertionVerdict refuse(std::string description, int status = 401) {
    return {.status = status, .error = "invalid_client", .description = std::move(description)};
}

struct MdCtxFree {
    void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};

}  // namespace

std::string base64url_decode(std::string_view text) {
    std::string out;
    std::uint32_t buffer = 0;
    int bits = 0;
    for (const char c : text) {
        int value = -1;
        if (c >= 'A' && c <= 'Z') value = c - 'A';
        else if (c >= 'a' && c <= 'z') value = c - 'a' + 26;
        else if (c >= '0' && c <= '9') value = c - '0' + 52;
        else if (c == '-' || c == '+') value = 62;
        else if (c == '_' || c == '/') value = 63;
        else if (c == '=') break;
        else return {};
        buffer = (buffer << 6) | static_cast<std::uint32_t>(value);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((buffer >> bits) & 0xff);
        }
    }
    return out;
}

std::string base64url_encode(std::string_view bytes) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t buffer = 0;
    int bits = 0;
    for (const char c : bytes) {
        buffer = (buffer << 8) | static_cast<unsigned char>(c);
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += alphabet[(buffer >> bits) & 63];
        }
    }
    if (bits > 0) out += alphabet[(buffer << (6 - bits)) & 63];
    return out;
}

Result<AssertionChecker> AssertionChecker::with_certificate(const std::string& pem_file) {
    std::FILE* file = std::fopen(pem_file.c_str(), "rb");
    if (file == nullptr) return Error{Errc::io, errno, "cannot read --client-cert " + pem_file};
    X509* cert = PEM_read_X509(file, nullptr, nullptr, nullptr);
    std::fclose(file);
    if (cert == nullptr) return Error{Errc::config, "--client-cert " + pem_file + " holds no PEM certificate"};
    AssertionChecker checker;
    checker.public_key_.reset(X509_get_pubkey(cert));
    unsigned char sha1[EVP_MAX_MD_SIZE];
    unsigned char sha256[EVP_MAX_MD_SIZE];
    unsigned int sha1_size = 0;
    unsigned int sha256_size = 0;
    const bool hashed = X509_digest(cert, EVP_sha1(), sha1, &sha1_size) == 1 &&
                        X509_digest(cert, EVP_sha256(), sha256, &sha256_size) == 1;
    X509_free(cert);
    if (!hashed || !checker.public_key_) return Error{Errc::config, "--client-cert " + pem_file + ": unusable certificate"};
    checker.x5t_ = base64url_encode({reinterpret_cast<const char*>(sha1), sha1_size});
    checker.x5t_s256_ = base64url_encode({reinterpret_cast<const char*>(sha256), sha256_size});
    return checker;
}

AssertionVerdict AssertionChecker::verify(std::string_view assertion, std::string_view expected_audience,
                                          std::string_view client_id, std::int64_t now_unix_s) const {
    const std::size_t dot1 = assertion.find('.');
    const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : assertion.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || dot2 + 1 >= assertion.size())
        return refuse("AADSTS50027: JWT token is invalid or malformed.");
    const std::string header_text = base64url_decode(assertion.substr(0, dot1));
    const std::string claims_text = base64url_decode(assertion.substr(dot1 + 1, dot2 - dot1 - 1));
    simdjson::dom::parser header_parser;
    simdjson::dom::parser claims_parser;
    simdjson::dom::element header;
    simdjson::dom::element claims;
    if (header_parser.parse(header_text).get(header) || claims_parser.parse(claims_text).get(claims))
        return refuse("AADSTS50027: JWT token is invalid or malformed.");

    std::string_view iss, sub, x5t, x5t_s256, alg, aud, jti;
    if (claims["iss"].get(iss) || claims["sub"].get(sub) || iss != client_id || sub != client_id)
        return refuse("AADSTS700021: Client assertion application identifier doesn't match 'client_id' parameter.");
    std::int64_t exp = 0;
    std::int64_t nbf = 0;
    if (claims["exp"].get(exp) || exp <= now_unix_s)
        return refuse("AADSTS700024: Client assertion is not within its valid time range.");
    if (!claims["nbf"].get(nbf) && nbf > now_unix_s + 300)
        return refuse("AADSTS700024: Client assertion is not within its valid time range (nbf is in the future).");
    const bool has_x5t = !header["x5t"].get(x5t);
    const bool has_x5t_s256 = !header["x5t#S256"].get(x5t_s256);
    if (!has_x5t && !has_x5t_s256)
        return refuse("AADSTS700027: Client assertion failed signature validation. [Reason - The header has neither "
                      "x5t nor x5t#S256.]");
    if (!public_key_) return {};

    if (header["alg"].get(alg) || (alg != "RS256" && alg != "PS256"))
        return refuse("AADSTS700027: Client assertion failed signature validation. [Reason - alg must be RS256 or "
                      "PS256, got '" + std::string(alg) + "'.]");
    if ((has_x5t && x5t != x5t_) || (has_x5t_s256 && x5t_s256 != x5t_s256_))
        return refuse("AADSTS700027: Client assertion contains an invalid signature. [Reason - The key was not found., "
                      "Thumbprint of key used by client: '" + std::string(has_x5t ? x5t : x5t_s256) + "']");
    if (claims["aud"].get(aud) || aud != expected_audience)
        return refuse("AADSTS700023: Client assertion audience claim does not match Realm issuer ('" +
                      std::string(aud) + "' is not '" + std::string(expected_audience) + "').");
    if (claims["jti"].get(jti) || jti.empty())
        return refuse("AADSTS50027: JWT token is invalid or malformed (no jti).");

    const std::string signature = base64url_decode(assertion.substr(dot2 + 1));
    const std::string_view signing_input = assertion.substr(0, dot2);
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* key_ctx = nullptr;  // owned by ctx
    bool valid = ctx && EVP_DigestVerifyInit(ctx.get(), &key_ctx, EVP_sha256(), nullptr, public_key_.get()) == 1;
    if (valid && alg == "PS256")
        valid = EVP_PKEY_CTX_set_rsa_padding(key_ctx, RSA_PKCS1_PSS_PADDING) == 1 &&
                EVP_PKEY_CTX_set_rsa_pss_saltlen(key_ctx, RSA_PSS_SALTLEN_DIGEST) == 1;
    valid = valid && EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                                      signature.size(), reinterpret_cast<const unsigned char*>(signing_input.data()),
                                      signing_input.size()) == 1;
    ERR_clear_error();
    if (!valid)
        return refuse("AADSTS700027: Client assertion contains an invalid signature. [Reason - The provided signature "
                      "value did not match the expected signature value.]");
    return {};
}

}  // namespace cefd::standin
