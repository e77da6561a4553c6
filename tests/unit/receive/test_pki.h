// tests/unit/receive/test_pki.h: a throwaway PKI for the TLS tests, made with the
// OpenSSL API (EC P-256, so it takes milliseconds): a CA, leaves signed by it, PEM files.
#pragma once

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace cefd::test {

struct KeyDeleter {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertDeleter {
    void operator()(X509* cert) const { X509_free(cert); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyDeleter>;
using Cert = std::unique_ptr<X509, CertDeleter>;

struct Identity {
    Key key;
    Cert cert;
};

inline void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
    ASSERT_NE(extension, nullptr) << value;
    X509_add_ext(cert, extension, -1);
    X509_EXTENSION_free(extension);
}

// A CA when `issuer` is null, else a leaf signed by it (serverAuth + clientAuth, SAN 127.0.0.1).
inline Identity make_identity(const std::string& common_name, const Identity* issuer, long serial) {
    Identity out;
    out.key.reset(EVP_EC_gen("P-256"));
    out.cert.reset(X509_new());
    X509* cert = out.cert.get();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
    X509_set_pubkey(cert, out.key.get());
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                               0);
    X509* issuer_cert = issuer != nullptr ? issuer->cert.get() : cert;
    X509_set_issuer_name(cert, X509_get_subject_name(issuer_cert));
    if (issuer == nullptr) {
        add_extension(cert, issuer_cert, NID_basic_constraints, "critical,CA:TRUE");
        add_extension(cert, issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_extension(cert, issuer_cert, NID_basic_constraints, "critical,CA:FALSE");
        add_extension(cert, issuer_cert, NID_ext_key_usage, "serverAuth,clientAuth");
        add_extension(cert, issuer_cert, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    }
    X509_sign(cert, issuer != nullptr ? issuer->key.get() : out.key.get(), EVP_sha256());
    return out;
}

inline void write_cert(const std::string& path, X509* cert) {
    BIO* bio = BIO_new_file(path.c_str(), "w");
    ASSERT_NE(bio, nullptr) << path;
    PEM_write_bio_X509(bio, cert);
    BIO_free(bio);
}

inline void write_key(const std::string& path, EVP_PKEY* key, mode_t mode = 0600) {
    BIO* bio = BIO_new_file(path.c_str(), "w");
    ASSERT_NE(bio, nullptr) << path;
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    BIO_free(bio);
    ::chmod(path.c_str(), mode);
}

inline std::string common_name_of(X509* cert) {
    char text[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, text, sizeof text);
    return text;
}

/// A test CA and a server identity it signed ("cefd-server-1"), written to `cert_path` (PEM) and
/// `key_path` (0600): what a TLS listener in a test needs.
inline void write_test_server_identity(const std::string& cert_path, const std::string& key_path) {
    const Identity ca = make_identity("cefd test CA", nullptr, 1);
    const Identity server = make_identity("cefd-server-1", &ca, 2);
    write_cert(cert_path, server.cert.get());
    write_key(key_path, server.key.get());
}

}  // namespace cefd::test
