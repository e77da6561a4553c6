// ClientAssertion: the JWT is checked independently of the code that made it: OpenSSL verifies
// the signature with the certificate's public key, and the thumbprints are recomputed here.
#include "stages/send/assertion.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <simdjson.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <set>

#include "stages/send/send.h"
#include "tests/support/support.h"
#include "tests/unit/send/test_cert.h"

namespace cefd {
namespace {

std::string decode(std::string_view text) {
    std::string out;
    std::uint32_t buffer = 0;
    int bits = 0;
    for (const char c : text) {
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '-'             ? 62
                : c == '_'             ? 63
                                       : -1;
        EXPECT_GE(v, 0) << "not base64url: " << c;
        buffer = buffer << 6 | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>(buffer >> bits & 0xff);
        }
    }
    return out;
}

struct Jwt {
    std::string header, claims, signature, signing_input;
};
Jwt split(const std::string& jwt) {
    const auto a = jwt.find('.');
    const auto b = jwt.find('.', a + 1);
    EXPECT_NE(b, std::string::npos);
    return {decode(jwt.substr(0, a)), decode(jwt.substr(a + 1, b - a - 1)), decode(jwt.substr(b + 1)), jwt.substr(0, b)};
}

X509* read_cert(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "r");
    X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    return cert;
}

std::string thumbprint(X509* cert, const EVP_MD* md) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    X509_digest(cert, md, digest, &size);
    return base64url_encode({reinterpret_cast<const char*>(digest), size});
}

TEST(ClientAssertion, MakesAnRs256JwtThatTheCertificateVerifies) {
    test::TempDir dir;
    const auto files = test::make_rsa_cert(dir.path());
    auto assertion = ClientAssertion::load(files.certificate, files.key);
    ASSERT_TRUE(assertion.ok()) << assertion.error().describe();
    const std::string audience = "https://login.microsoftonline.us/tenant-1/oauth2/v2.0/token";
    auto jwt = assertion->make(audience, "client-1", 1'700'000'000);
    ASSERT_TRUE(jwt.ok());
    const Jwt parts = split(*jwt);

    X509* cert = read_cert(files.certificate);
    simdjson::dom::parser parser;
    simdjson::dom::element header = parser.parse(parts.header);
    EXPECT_EQ(std::string_view(header["alg"]), "RS256");
    EXPECT_EQ(std::string_view(header["typ"]), "JWT");
    EXPECT_EQ(std::string_view(header["x5t"]), thumbprint(cert, EVP_sha1()));
    EXPECT_EQ(std::string_view(header["x5t#S256"]), thumbprint(cert, EVP_sha256()));
    EXPECT_EQ(std::string_view(header["x5t"]).size(), 27U);  // 20 bytes, unpadded

    simdjson::dom::parser claims_parser;
    simdjson::dom::element claims = claims_parser.parse(parts.claims);
    EXPECT_EQ(std::string_view(claims["aud"]), audience);
    EXPECT_EQ(std::string_view(claims["iss"]), "client-1");
    EXPECT_EQ(std::string_view(claims["sub"]), "client-1");
    EXPECT_EQ(std::int64_t(claims["nbf"]), 1'700'000'000);
    EXPECT_EQ(std::int64_t(claims["exp"]), 1'700'000'600);
    const std::string_view jti = claims["jti"];
    ASSERT_EQ(jti.size(), 36U);
    EXPECT_EQ(jti[14], '4') << "UUID v4: " << jti;

    EVP_PKEY* key = X509_get_pubkey(cert);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ASSERT_EQ(EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key), 1);
    EXPECT_EQ(EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(parts.signature.data()), parts.signature.size(),
                               reinterpret_cast<const unsigned char*>(parts.signing_input.data()),
                               parts.signing_input.size()),
              1);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    X509_free(cert);
}

TEST(ClientAssertion, EveryAssertionHasItsOwnJti) {
    test::TempDir dir;
    const auto files = test::make_rsa_cert(dir.path());
    auto assertion = ClientAssertion::load(files.certificate, files.key);
    ASSERT_TRUE(assertion.ok());
    std::set<std::string> ids;
    for (int i = 0; i < 20; ++i) {
        simdjson::dom::parser parser;
        const std::string claims = split(assertion->make("aud", "c", 1).value()).claims;
        ids.insert(std::string(std::string_view(parser.parse(claims)["jti"])));
    }
    EXPECT_EQ(ids.size(), 20U);
}

TEST(ClientAssertion, ReadsTheKeyFromTheCertificateFileWhenNoKeyFileIsGiven) {
    test::TempDir dir;
    const auto files = test::make_rsa_cert(dir.path());
    test::write_file(dir.file("both.pem"), test::read_file(files.certificate) + test::read_file(files.key), 0600);
    EXPECT_TRUE(ClientAssertion::load(dir.file("both.pem"), "").ok());
}

TEST(ClientAssertion, RefusesAKeyThatOthersCanRead) {
    test::TempDir dir;
    const auto files = test::make_rsa_cert(dir.path());
    ::chmod(files.key.c_str(), 0644);
    auto assertion = ClientAssertion::load(files.certificate, files.key);
    ASSERT_FALSE(assertion.ok());
    EXPECT_NE(assertion.error().message.find("readable by other users"), std::string::npos) << assertion.error().message;

    AzureConfig config;
    config.target.endpoint = "https://x.ingest.monitor.azure.com";
    config.target.dcr_id = "dcr-0123456789abcdef0123456789abcdef";
    config.auth = AzureConfig::Auth::client_certificate;
    config.tenant_id = "t";
    config.client_id = "c";
    config.client_certificate_file = files.certificate;
    config.client_key_file = files.key;
    ConfigErrors errors;
    config.validate(errors);
    ASSERT_EQ(errors.list().size(), 1U);
    EXPECT_TRUE(errors.list()[0].starts_with("azure.client_key_file")) << errors.list()[0];
}

TEST(ClientAssertion, RefusesTheKeyOfAnotherCertificate) {
    test::TempDir dir;
    const auto first = test::make_rsa_cert(dir.path(), "first");
    const auto second = test::make_rsa_cert(dir.path(), "second");
    auto assertion = ClientAssertion::load(first.certificate, second.key);
    ASSERT_FALSE(assertion.ok());
    EXPECT_NE(assertion.error().message.find("is not the key of the certificate"), std::string::npos);
}

TEST(ClientAssertion, RefusesMissingAndNonPemFiles) {
    test::TempDir dir;
    const auto files = test::make_rsa_cert(dir.path());
    EXPECT_FALSE(ClientAssertion::load(dir.file("missing.crt"), files.key).ok());
    test::write_file(dir.file("junk.crt"), "not a certificate\n");
    EXPECT_FALSE(ClientAssertion::load(dir.file("junk.crt"), files.key).ok());
}

TEST(Base64Url, EncodesWithoutPadding) {
    EXPECT_EQ(base64url_encode(""), "");
    EXPECT_EQ(base64url_encode("f"), "Zg");
    EXPECT_EQ(base64url_encode("fo"), "Zm8");
    EXPECT_EQ(base64url_encode("foo"), "Zm9v");
    EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
}

}  // namespace
}  // namespace cefd
