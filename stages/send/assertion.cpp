#include "stages/send/assertion.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cstdio>

namespace cefd {

namespace {

struct FileClose {
    void operator()(FILE* f) const noexcept { std::fclose(f); }
};
struct X509Free {
    void operator()(X509* cert) const noexcept { X509_free(cert); }
};
struct MdCtxFree {
    void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};

/// The last OpenSSL error as text, for start-up messages (it never contains key material).
std::string openssl_error() {
    const unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) return "no OpenSSL error";
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return text;
}

std::string json_escape(std::string_view text) {
    std::string out;
    for (const char c : text) {
        if (c == '"' || c == '\\') out += '\\';
        if (static_cast<unsigned char>(c) < 0x20) continue;  // ids and URLs never hold control characters
        out += c;
    }
    return out;
}

std::string uuid_v4() {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) return {};
    b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40);
    b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80);
    char out[37];
    std::snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                  b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return out;
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    const auto at = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k])); };
    for (; i + 3 <= bytes.size(); i += 3) {
        const std::uint32_t v = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
        out += alphabet[v >> 18 & 63];
        out += alphabet[v >> 12 & 63];
        out += alphabet[v >> 6 & 63];
        out += alphabet[v & 63];
    }
    if (const std::size_t rest = bytes.size() - i; rest > 0) {
        const std::uint32_t v = at(i) << 16 | (rest == 2 ? at(i + 1) << 8 : 0);
        out += alphabet[v >> 18 & 63];
        out += alphabet[v >> 12 & 63];
        if (rest == 2) out += alphabet[v >> 6 & 63];
    }
    return out;
}

bool readable_by_others(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IROTH) != 0;
}

Result<ClientAssertion> ClientAssertion::load(const std::string& certificate_file, const std::string& key_file) {
    const std::string& key_path = key_file.empty() ? certificate_file : key_file;
    const char* key_name = key_file.empty() ? "azure.client_certificate_file" : "azure.client_key_file";

    std::unique_ptr<FILE, FileClose> cert_in(std::fopen(certificate_file.c_str(), "rb"));
    if (!cert_in) return Error{Errc::config, errno, "azure.client_certificate_file: cannot read " + certificate_file};
    std::unique_ptr<X509, X509Free> cert(PEM_read_X509(cert_in.get(), nullptr, nullptr, nullptr));
    if (!cert)
        return Error{Errc::config, "azure.client_certificate_file: " + certificate_file +
                                       " holds no PEM certificate (" + openssl_error() + ")"};

    if (readable_by_others(key_path))
        return Error{Errc::config, std::string(key_name) + ": " + key_path +
                                       " holds a private key and is readable by other users: chmod 600 it"};
    std::unique_ptr<FILE, FileClose> key_in(std::fopen(key_path.c_str(), "rb"));
    if (!key_in) return Error{Errc::config, errno, std::string(key_name) + ": cannot read " + key_path};
    ClientAssertion assertion;
    assertion.key_.reset(PEM_read_PrivateKey(key_in.get(), nullptr, nullptr, nullptr));
    if (!assertion.key_)
        return Error{Errc::config, std::string(key_name) + ": " + key_path +
                                       " holds no unencrypted PEM private key (" + openssl_error() + ")"};
    // Entra ID registers RSA certificates only.
    if (EVP_PKEY_get_base_id(assertion.key_.get()) != EVP_PKEY_RSA)
        return Error{Errc::config, std::string(key_name) + ": the key must be RSA (Entra ID accepts RSA certificates)"};
    if (X509_check_private_key(cert.get(), assertion.key_.get()) != 1) {
        ERR_clear_error();
        return Error{Errc::config, std::string(key_name) + ": " + key_path + " is not the key of the certificate in " +
                                       certificate_file};
    }

    unsigned char sha1[EVP_MAX_MD_SIZE];
    unsigned char sha256[EVP_MAX_MD_SIZE];
    unsigned int sha1_size = 0;
    unsigned int sha256_size = 0;
    if (X509_digest(cert.get(), EVP_sha1(), sha1, &sha1_size) != 1 ||
        X509_digest(cert.get(), EVP_sha256(), sha256, &sha256_size) != 1)
        return Error{Errc::config, "azure.client_certificate_file: cannot hash the certificate (" + openssl_error() + ")"};
    assertion.x5t_ = base64url_encode({reinterpret_cast<const char*>(sha1), sha1_size});
    assertion.x5t_s256_ = base64url_encode({reinterpret_cast<const char*>(sha256), sha256_size});
    return assertion;
}

Result<std::string> ClientAssertion::make(std::string_view audience, std::string_view client_id,
                                          std::int64_t now_unix_s) const {
    const std::string jti = uuid_v4();
    if (jti.empty()) return Error{Errc::auth, "client assertion: no random bytes (" + openssl_error() + ")"};
    const std::string header = R"({"alg":"RS256","typ":"JWT","x5t":")" + x5t_ + R"(","x5t#S256":")" + x5t_s256_ + "\"}";
    const std::string now = std::to_string(now_unix_s);
    const std::string claims = R"({"aud":")" + json_escape(audience) + R"(","exp":)" +
                               std::to_string(now_unix_s + lifetime_s) + R"(,"iat":)" + now + R"(,"iss":")" +
                               json_escape(client_id) + R"(","jti":")" + jti + R"(","nbf":)" + now +
                               R"(,"sub":")" + json_escape(client_id) + "\"}";
    std::string signing_input = base64url_encode(header) + "." + base64url_encode(claims);

    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    std::size_t signature_size = 0;
    // RSA PKCS#1 v1.5 is the default padding for an RSA key: RS256.
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &signature_size,
                       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) != 1)
        return Error{Errc::auth, "client assertion: cannot sign (" + openssl_error() + ")"};
    std::string signature(signature_size, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &signature_size,
                       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) != 1)
        return Error{Errc::auth, "client assertion: cannot sign (" + openssl_error() + ")"};
    signature.resize(signature_size);
    signing_input += '.';
    signing_input += base64url_encode(signature);
    return signing_input;
}

}  // namespace cefd
