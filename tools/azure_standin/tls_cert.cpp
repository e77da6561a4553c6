#include "tools/azure_standin/tls_cert.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

namespace cefd::standin {
namespace {

Error openssl_error(const char* what) {
    char text[256] = {};
    ERR_error_string_n(ERR_get_error(), text, sizeof text);
    return Error{Errc::unexpected, std::string(what) + ": " + text};
}

bool add_extension(X509* cert, int nid, const char* value) {
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
    if (extension == nullptr) return false;
    const bool added = X509_add_ext(cert, extension, -1) == 1;
    X509_EXTENSION_free(extension);
    return added;
}

}  // namespace

Result<SelfSignedCert> make_self_signed_cert(int valid_days) {
    SelfSignedCert out;
    out.key.reset(EVP_EC_gen("P-256"));
    if (!out.key) return openssl_error("EVP_EC_gen");
    out.cert.reset(X509_new());
    X509* cert = out.cert.get();
    if (cert == nullptr || X509_set_version(cert, 2) != 1) return openssl_error("X509_new");

    // A random serial: clients that cache certificates must not mix up two runs.
    unsigned char serial_bytes[16];
    if (RAND_bytes(serial_bytes, sizeof serial_bytes) != 1) return openssl_error("RAND_bytes");
    serial_bytes[0] &= 0x7f;  // positive
    BIGNUM* serial = BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr);
    const bool serial_ok = serial != nullptr && BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) != nullptr;
    BN_free(serial);
    if (!serial_ok) return openssl_error("serial");

    // An hour of slack before now covers clock differences between processes and VMs.
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), static_cast<long>(valid_days) * 86'400);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("cefd test"), -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("cefd-azure-standin"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    if (X509_set_pubkey(cert, out.key.get()) != 1) return openssl_error("X509_set_pubkey");

    if (!add_extension(cert, NID_basic_constraints, "critical,CA:TRUE") ||
        !add_extension(cert, NID_key_usage, "critical,digitalSignature,keyCertSign") ||
        !add_extension(cert, NID_ext_key_usage, "serverAuth") ||
        !add_extension(cert, NID_subject_key_identifier, "hash") ||
        !add_extension(cert, NID_subject_alt_name, "IP:127.0.0.1,IP:::1,DNS:localhost")) {
        return openssl_error("X509 extension");
    }
    if (X509_sign(cert, out.key.get(), EVP_sha256()) == 0) return openssl_error("X509_sign");

    BIO* bio = BIO_new(BIO_s_mem());
    if (bio == nullptr || PEM_write_bio_X509(bio, cert) != 1) {
        BIO_free(bio);
        return openssl_error("PEM_write_bio_X509");
    }
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio, &data);
    out.cert_pem.assign(data, static_cast<std::size_t>(length));
    BIO_free(bio);
    return out;
}

}  // namespace cefd::standin
