// tests/unit/send/test_cert.h: a throw-away RSA certificate and key, written as PEM files, for
// the client_certificate tests (Entra ID registers RSA certificates).
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <sys/stat.h>

#include <cstdio>
#include <stdexcept>
#include <string>

namespace cefd::test {

struct CertFiles {
    std::string certificate;
    std::string key;
};

/// Writes <dir>/<name>.crt (0644) and <dir>/<name>.key (0600): a self-signed RSA-2048 pair.
inline CertFiles make_rsa_cert(const std::string& dir, const std::string& name = "client") {
    EVP_PKEY* key = EVP_RSA_gen(2048);
    X509* cert = X509_new();
    if (key == nullptr || cert == nullptr) throw std::runtime_error("openssl: cannot make a key");
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME* subject = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("cefd-test"), -1, -1, 0);
    X509_set_issuer_name(cert, subject);
    X509_sign(cert, key, EVP_sha256());
    CertFiles files{dir + "/" + name + ".crt", dir + "/" + name + ".key"};
    FILE* out = std::fopen(files.certificate.c_str(), "w");
    PEM_write_X509(out, cert);
    std::fclose(out);
    out = std::fopen(files.key.c_str(), "w");
    PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(out);
    ::chmod(files.key.c_str(), 0600);
    X509_free(cert);
    EVP_PKEY_free(key);
    return files;
}

}  // namespace cefd::test
