// SIGHUP and a client certificate renewed at the same paths. The reload diff compared the path
// strings only: a renewal was "0 changes" (the old certificate stayed until a restart), and a
// renewal that no longer loads was a successful reload (the next restart failed). Found in
// review.
#include <gtest/gtest.h>

#include <string>

#include "engine/pipeline/config.h"
#include "engine/pipeline/pipeline.h"
#include "tests/support/support.h"
#include "tests/unit/send/test_cert.h"

namespace cefd {
namespace {

std::string all(const ConfigErrors& errors) {
    std::string out;
    for (const auto& e : errors.list()) out += e + "\n";
    return out;
}

struct CertPipeline {
    test::TempDir dir;
    test::CertFiles files = test::make_rsa_cert(dir.path(), "client");
    int port = test::free_port();
    std::string text() const {
        return "[receive]\nlisten = \"127.0.0.1\"\nudp_port = " + std::to_string(port) +
               "\ntcp_port = 0\n"
               "[spool]\ndir = \"" +
               dir.file("spool") +
               "\"\n"
               "[azure]\nendpoint = \"http://127.0.0.1:1\"\ndcr_id = \"dcr-0123456789abcdef0123456789abcdef\"\n"
               "auth = \"client_certificate\"\ntenant_id = \"t\"\nclient_id = \"c\"\n"
               "authority_host = \"http://127.0.0.1:1\"\n"
               "client_certificate_file = \"" +
               files.certificate + "\"\nclient_key_file = \"" + files.key +
               "\"\n"
               "drain_timeout_ms = 100\ndead_letter_dir = \"" +
               dir.file("dl") +
               "\"\n"
               "[metrics]\nlisten = \"\"\n";
    }
    std::unique_ptr<Pipeline> build() const {
        ConfigErrors errors;
        auto config = load_config_text(text(), "<test>", errors);
        if (!config) ADD_FAILURE() << all(errors);
        auto built = Pipeline::build(*config);
        if (!built.ok()) ADD_FAILURE() << built.error().describe();
        return built.ok() ? std::move(built).value() : nullptr;
    }
    Pipeline::ReloadReport reload(Pipeline& pipeline) const {
        ConfigErrors errors;
        auto file = load_config_text(text(), "<test>", errors);
        if (!file) ADD_FAILURE() << all(errors);
        return pipeline.reload_config(*file);
    }
};

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& line : lines) out += line + "\n";
    return out;
}

TEST(ReloadCertificate, ARenewalAtTheSamePathsIsAppliedOnce) {
    CertPipeline t;
    auto pipeline = t.build();
    ASSERT_NE(pipeline, nullptr);
    EXPECT_TRUE(t.reload(*pipeline).applied.empty()) << "nothing changed yet";

    test::make_rsa_cert(t.dir.path(), "client");  // renewed: a new key and certificate, same files
    const auto report = t.reload(*pipeline);
    EXPECT_TRUE(report.ok) << joined(report.problems);
    EXPECT_NE(joined(report.applied).find("azure.client_certificate_file"), std::string::npos)
        << "applied:\n"
        << joined(report.applied);
    EXPECT_NE(joined(report.applied).find("new contents"), std::string::npos) << joined(report.applied);

    // The next SIGHUP with the same files: nothing to apply (the running config took the renewal).
    EXPECT_TRUE(t.reload(*pipeline).applied.empty()) << joined(t.reload(*pipeline).applied);
}

TEST(ReloadCertificate, ARenewalThatDoesNotLoadFailsTheReloadAndKeepsTheOldCertificate) {
    CertPipeline t;
    auto pipeline = t.build();
    ASSERT_NE(pipeline, nullptr);
    test::write_file(t.files.certificate, "not a certificate\n", 0644);
    const auto report = t.reload(*pipeline);
    EXPECT_FALSE(report.ok) << "reload reported ok with an unloadable client_certificate_file";
    EXPECT_NE(joined(report.problems).find("azure.client_certificate_file"), std::string::npos)
        << joined(report.problems);
    EXPECT_EQ(pipeline->metrics().value("config_reloads_total", "result=\"invalid\""), 1);
}

}  // namespace
}  // namespace cefd
