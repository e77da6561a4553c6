// `cefd check` when only TLS listens: the test event goes through cefd's own TLS listener (the
// check's client pins the collector's certificate file), in-process and against a running
// instance; with mutual TLS it cannot present a client certificate and WARNs saying so; and a
// listener serving a certificate other than the configured file's fails the step.
#include <gtest/gtest.h>
#include <signal.h>

#include <simdjson.h>

#include <string>
#include <vector>

#include "tests/e2e/harness.h"
#include "tests/unit/receive/test_pki.h"

namespace cefd::test {
namespace {

struct Pki {
    Identity ca = make_identity("cefd check test CA", nullptr, 1);
    Identity server = make_identity("cefd-check-server", &ca, 2);
    explicit Pki(const TempDir& dir) {
        write_cert(dir.file("ca.pem"), ca.cert.get());
        write_cert(dir.file("server.pem"), server.cert.get());
        write_key(dir.file("server.key"), server.key.get());
    }
};

/// A config that receives only over TLS (udp_port = 0, tcp_port = 0), delivering to `azure`.
std::string write_tls_only_config(const TempDir& dir, const AzureStandin& azure, bool mutual = false) {
    write_file(dir.file("client-secret"), "cefd-test-secret\n", 0600);
    std::string toml = "[runtime]\nworkers = 1\nring_bytes = 4194304\n";
    toml += "[receive]\nlisten = \"127.0.0.1\"\nudp_port = 0\ntcp_port = 0\ntls_port = " + std::to_string(free_port()) +
            "\ntls_cert_file = \"" + dir.file("server.pem") + "\"\ntls_key_file = \"" + dir.file("server.key") + "\"\n";
    if (mutual) toml += "tls_client_ca_file = \"" + dir.file("ca.pem") + "\"\n";
    toml += "[batch]\nlinger_ms = 50\n";
    toml += "[spool]\ndir = \"" + dir.file("spool") + "\"\n";
    toml += "[azure]\nendpoint = \"" + azure.url() + "\"\ndcr_id = \"dcr-00000000000000000000000000000000\"\n";
    toml += "authority_host = \"" + azure.url() + "\"\ntenant_id = \"00000000-0000-0000-0000-000000000000\"\n";
    toml += "client_id = \"cefd-test-client\"\nclient_secret_file = \"" + dir.file("client-secret") + "\"\n";
    toml += "ca_file = \"" + azure.ca_file() + "\"\ndead_letter_dir = \"" + dir.file("dead-letter") + "\"\n";
    toml += "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(free_port(false)) + "\"\nlog_interval_s = 0\n";
    write_file(dir.file("cefd.toml"), toml, 0600);
    return dir.file("cefd.toml");
}

struct LastStep {
    int code = -1;
    std::string output, step, status, message, hint;
};

/// `cefd check --json`, and its last step.
LastStep run_check(const std::string& config, const std::string& extra = "") {
    LastStep run;
    run.code = run_command(cefd_binary() + " check --json --timeout 30 --config " + config + " " + extra, &run.output);
    simdjson::dom::parser parser;
    simdjson::dom::array steps;
    if (parser.parse(run.output).get(steps) != simdjson::SUCCESS || steps.size() == 0) return run;
    simdjson::dom::element last = steps.at(steps.size() - 1);
    run.step = std::string(std::string_view(last["step"].get_string()));
    run.status = std::string(std::string_view(last["status"].get_string()));
    run.message = std::string(std::string_view(last["message"].get_string()));
    run.hint = std::string(std::string_view(last["hint"].get_string()));
    return run;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// The marker `cefd check` printed in its test event step.
std::string marker_of(const std::string& message) {
    const auto at = message.find("cefdcheck");
    return at == std::string::npos ? "" : message.substr(at, 25);
}

std::size_t rows_marked(const AzureStandin& azure, const std::string& marker) {
    std::size_t n = 0;
    for (const auto& row : azure.rows()) {
        const auto found = row.find("AdditionalExtensions");
        if (found != row.end() && contains(found->second, marker)) ++n;
    }
    return n;
}

/// `cefd run` on `config`, started and listening.
std::unique_ptr<Process> start_cefd(const TempDir& dir, const std::string& config) {
    auto process = std::make_unique<Process>(std::vector<std::string>{cefd_binary(), "run", "--config", config},
                                             dir.path(), "cefd");
    EXPECT_TRUE(wait_until(std::chrono::seconds(20), [&] { return contains(process->err(), "running"); }))
        << process->err();
    return process;
}

TEST(CheckTls, OnlyTlsListensAndTheTestEventIsDeliveredThroughIt) {
    TempDir dir;
    Pki pki(dir);
    AzureStandin azure(dir);
    const LastStep run = run_check(write_tls_only_config(dir, azure));
    EXPECT_EQ(run.code, 0) << run.output;
    EXPECT_EQ(run.step, "test event") << run.output;
    EXPECT_EQ(run.status, "PASS") << run.output;
    EXPECT_TRUE(contains(run.message, "sent through cefd's own TLS listener and delivered")) << run.output;
    const std::string marker = marker_of(run.message);
    ASSERT_FALSE(marker.empty()) << run.output;
    // The direct request and the event through the TLS listener.
    EXPECT_EQ(rows_marked(azure, marker), 2U) << read_file(azure.rows_path());
}

TEST(CheckTls, RunningInstanceThatOnlyListensOnTlsGetsTheTestEvent) {
    TempDir dir;
    Pki pki(dir);
    AzureStandin azure(dir);
    const std::string config = write_tls_only_config(dir, azure);
    auto cefd = start_cefd(dir, config);
    const LastStep run = run_check(config, "--running");
    EXPECT_EQ(run.code, 0) << run.output << cefd->err();
    EXPECT_EQ(run.status, "PASS") << run.output;
    EXPECT_TRUE(contains(run.message, "sent over TLS")) << run.output;
    EXPECT_EQ(rows_marked(azure, marker_of(run.message)), 2U) << read_file(azure.rows_path());
    EXPECT_EQ(cefd->stop(SIGTERM), 0) << cefd->err();
}

TEST(CheckTls, MutualTlsWarnsThatTheSelfTestHasNoClientCertificate) {
    TempDir dir;
    Pki pki(dir);
    AzureStandin azure(dir);
    const LastStep run = run_check(write_tls_only_config(dir, azure, true));
    EXPECT_EQ(run.code, 0) << "a warning is not a failure: " << run.output;
    EXPECT_EQ(run.step, "test event") << run.output;
    EXPECT_EQ(run.status, "WARN") << run.output;
    EXPECT_TRUE(contains(run.message, "receive.tls_client_ca_file")) << run.output;
    EXPECT_TRUE(contains(run.message, "client certificate")) << run.output;
    EXPECT_TRUE(contains(run.hint, "openssl s_client")) << run.output;
}

TEST(CheckTls, AListenerWithAnotherCertificateThanTheConfiguredFileFails) {
    TempDir dir;
    Pki pki(dir);
    AzureStandin azure(dir);
    const std::string config = write_tls_only_config(dir, azure);
    auto cefd = start_cefd(dir, config);
    // A new certificate on disk that the running listener has not loaded (no SIGHUP): the
    // check's client trusts only the file, so the old certificate it is served fails.
    Identity renewed = make_identity("cefd-check-server-renewed", &pki.ca, 3);
    write_cert(dir.file("server.pem"), renewed.cert.get());
    const LastStep run = run_check(config, "--running");
    EXPECT_EQ(run.code, 1) << run.output;
    EXPECT_EQ(run.step, "test event") << run.output;
    EXPECT_EQ(run.status, "FAIL") << run.output;
    EXPECT_TRUE(contains(run.message, "presents a certificate that is not in " + dir.file("server.pem"))) << run.output;
    EXPECT_EQ(cefd->stop(SIGTERM), 0) << cefd->err();
}

}  // namespace
}  // namespace cefd::test
