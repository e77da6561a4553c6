// `cefd check`: passes against the stand-in, and against each broken setup fails at the step
// that is broken, with the hint that fixes it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <simdjson.h>
#include <ctime>
#include <string>
#include <thread>

#include "tests/e2e/harness.h"

namespace cefd::test {
namespace {

using namespace std::chrono_literals;

struct CheckConfig {
    std::string secret = "cefd-test-secret";
    std::string tenant = "00000000-0000-0000-0000-000000000000";
    std::string dcr = "dcr-00000000000000000000000000000000";
    std::string ca_file;   // empty: the stand-in's CA
    std::string spool_dir; // empty: dir/spool
    std::string spool_extra;
    int port = 0;          // 0: a free one
};

/// Writes a config for `azure` and returns its path; the ports are free ones.
std::string write_config(const TempDir& dir, const AzureStandin& azure, const CheckConfig& c = {}) {
    write_file(dir.file("client-secret"), c.secret + "\n", 0600);
    const int port = c.port != 0 ? c.port : free_port();
    std::string toml = "[runtime]\nworkers = 1\nring_bytes = 4194304\n";
    toml += "[receive]\nudp_port = " + std::to_string(port) + "\ntcp_port = " + std::to_string(port) + "\n";
    toml += "[batch]\nlinger_ms = 50\n";
    toml += "[spool]\ndir = \"" + (c.spool_dir.empty() ? dir.file("spool") : c.spool_dir) + "\"\n" + c.spool_extra;
    toml += "[azure]\nendpoint = \"" + azure.url() + "\"\ndcr_id = \"" + c.dcr + "\"\n";
    toml += "authority_host = \"" + azure.url() + "\"\ntenant_id = \"" + c.tenant + "\"\n";
    toml += "client_id = \"cefd-test-client\"\nclient_secret_file = \"" + dir.file("client-secret") + "\"\n";
    toml += "ca_file = \"" + (c.ca_file.empty() ? azure.ca_file() : c.ca_file) + "\"\n";
    toml += "dead_letter_dir = \"" + dir.file("dead-letter") + "\"\n";
    toml += "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(free_port(false)) + "\"\nlog_interval_s = 0\n";
    write_file(dir.file("cefd.toml"), toml, 0600);
    return dir.file("cefd.toml");
}

struct Step {
    std::string step, status, message, hint;
};

struct CheckRun {
    int code = -1;
    std::string output;
    std::vector<Step> steps;
    /// The first step that failed, or an empty Step.
    [[nodiscard]] Step first_failure() const {
        for (const Step& s : steps) {
            if (s.status == "FAIL") return s;
        }
        return {};
    }
};

CheckRun run_check(const std::string& config, const std::string& extra = "") {
    CheckRun run;
    run.code = run_command(cefd_binary() + " check --json --timeout 30 --config " + config + " " + extra, &run.output);
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (parser.parse(run.output).get(root) != simdjson::SUCCESS) return run;
    for (auto item : root.get_array()) {
        Step s;
        s.step = std::string(std::string_view(item["step"].get_string()));
        s.status = std::string(std::string_view(item["status"].get_string()));
        s.message = std::string(std::string_view(item["message"].get_string()));
        s.hint = std::string(std::string_view(item["hint"].get_string()));
        run.steps.push_back(std::move(s));
    }
    return run;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(CheckCommand, PassesAgainstTheStandinAndDeliversItsMarkedEvent) {
    TempDir dir;
    AzureStandin azure(dir);
    const CheckRun run = run_check(write_config(dir, azure));
    ASSERT_EQ(run.code, 0) << run.output;
    ASSERT_FALSE(run.steps.empty()) << run.output;
    EXPECT_EQ(run.steps.back().step, "test event") << run.output;
    EXPECT_EQ(run.steps.back().status, "PASS") << run.output;
    const std::string& message = run.steps.back().message;
    const auto at = message.find("cefdcheck");
    ASSERT_NE(at, std::string::npos) << message;
    const std::string marker = message.substr(at, 25);
    EXPECT_TRUE(contains(message, "CommonSecurityLog | where AdditionalExtensions has \"" + marker + "\"")) << message;
    // The direct request and the event through the listener: both rows carry the marker.
    std::size_t marked = 0;
    for (const auto& row : azure.rows()) {
        const auto found = row.find("AdditionalExtensions");
        if (found != row.end() && contains(found->second, marker)) ++marked;
    }
    EXPECT_EQ(marked, 2U) << read_file(azure.rows_path());
}

TEST(CheckCommand, PrintsOneLinePerStepWithoutJson) {
    TempDir dir;
    AzureStandin azure(dir);
    std::string out;
    EXPECT_EQ(run_command(cefd_binary() + " check --config " + write_config(dir, azure), &out), 0) << out;
    EXPECT_EQ(out.rfind("PASS  config: ", 0), 0U) << out;
    EXPECT_TRUE(contains(out, "PASS  token: ")) << out;
    EXPECT_TRUE(contains(out, "PASS  test event: ")) << out;
}

TEST(CheckCommand, WrongSecretFailsAtTheTokenWithTheAadCode) {
    TempDir dir;
    AzureStandin azure(dir);
    const CheckRun run = run_check(write_config(dir, azure, {.secret = "not-the-secret"}));
    EXPECT_EQ(run.code, 1) << run.output;
    const Step failed = run.first_failure();
    EXPECT_EQ(failed.step, "token") << run.output;
    EXPECT_TRUE(contains(failed.message, "AADSTS7000215")) << run.output;
    EXPECT_TRUE(contains(failed.hint, "client secret is wrong")) << run.output;
    EXPECT_FALSE(contains(run.output, "not-the-secret")) << "the secret must never be printed";
}

TEST(CheckCommand, WrongTenantFailsAtTheToken) {
    TempDir dir;
    AzureStandin azure(dir);
    const CheckRun run = run_check(write_config(dir, azure, {.tenant = "11111111-1111-1111-1111-111111111111"}));
    EXPECT_EQ(run.code, 1) << run.output;
    const Step failed = run.first_failure();
    EXPECT_EQ(failed.step, "token") << run.output;
    EXPECT_TRUE(contains(failed.hint, "tenant")) << run.output;
}

TEST(CheckCommand, WrongDcrFailsAtIngestionNamingTheDcrId) {
    TempDir dir;
    AzureStandin azure(dir);
    const CheckRun run = run_check(write_config(dir, azure, {.dcr = "dcr-11111111111111111111111111111111"}));
    EXPECT_EQ(run.code, 1) << run.output;
    const Step failed = run.first_failure();
    EXPECT_EQ(failed.step.rfind("ingestion ", 0), 0U) << run.output;
    EXPECT_TRUE(contains(failed.message, "HTTP 404")) << run.output;
    EXPECT_TRUE(contains(failed.hint, "azure.dcr_id")) << run.output;
}

TEST(CheckCommand, ForbiddenDcrFailsAtIngestionWithTheRoleToGrant) {
    TempDir dir;
    AzureStandin azure(dir, {"--forbid-dcr", "dcr-00000000000000000000000000000000"});
    const CheckRun run = run_check(write_config(dir, azure));
    EXPECT_EQ(run.code, 1) << run.output;
    const Step failed = run.first_failure();
    EXPECT_EQ(failed.step.rfind("ingestion ", 0), 0U) << run.output;
    EXPECT_TRUE(contains(failed.message, "HTTP 403")) << run.output;
    EXPECT_TRUE(contains(failed.hint, "Monitoring Metrics Publisher")) << run.output;
    EXPECT_EQ(run.steps.back().step, "test event") << run.output;
    EXPECT_TRUE(contains(run.steps.back().message, "not sent")) << "no event is dead-lettered by a check: " << run.output;
}

TEST(CheckCommand, UntrustedCaFailsAtTheEndpointsTls) {
    TempDir dir;
    AzureStandin azure(dir);
    TempDir other;
    AzureStandin stranger(other);  // a CA that did not sign this stand-in's certificate
    const CheckRun run = run_check(write_config(dir, azure, {.ca_file = stranger.ca_file()}));
    EXPECT_EQ(run.code, 1) << run.output;
    const Step failed = run.first_failure();
    EXPECT_EQ(failed.step, "endpoint") << run.output;
    EXPECT_EQ(failed.message.rfind("TLS: ", 0), 0U) << run.output;
    EXPECT_TRUE(contains(failed.hint, "azure.ca_file")) << run.output;
}

TEST(CheckCommand, PortInUseFailsAtTheListenerNamingTheHolder) {
    TempDir dir;
    AzureStandin azure(dir);
    const int port = free_port();
    const int holder = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    const CheckRun run = run_check(write_config(dir, azure, {.port = port}));
    ::close(holder);
    EXPECT_EQ(run.code, 1) << run.output;
    const Step failed = run.first_failure();
    EXPECT_EQ(failed.step, "listen udp 127.0.0.1:" + std::to_string(port)) << run.output;
    // This process among the holders; under a parallel ctest another test's process may hold a
    // UDP socket on the same port number too (an ephemeral one) and be listed before it.
    EXPECT_TRUE(contains(failed.message, "is in use by pid ")) << run.output;
    EXPECT_TRUE(contains(failed.message, "pid " + std::to_string(::getpid()) + " (")) << run.output;
    EXPECT_TRUE(contains(failed.hint, "receive.udp_port")) << run.output;
}

TEST(CheckCommand, UnwritableSpoolFailsAtTheSpool) {
    TempDir dir;
    AzureStandin azure(dir);
    // Under a regular file: unwritable even for root, which ignores directory modes.
    write_file(dir.file("not-a-dir"), "x");
    const CheckRun run = run_check(write_config(dir, azure, {.spool_dir = dir.file("not-a-dir") + "/spool"}));
    EXPECT_EQ(run.code, 1) << run.output;
    const Step failed = run.first_failure();
    EXPECT_EQ(failed.step, "spool") << run.output;
    EXPECT_TRUE(contains(failed.message, "not a directory")) << run.output;
    EXPECT_TRUE(contains(failed.hint, "uid")) << run.output;
}

TEST(CheckCommand, SpoolDiskTooSmallForMaxBytesFailsAtTheSpool) {
    TempDir dir;
    AzureStandin azure(dir);
    // 4 TiB: more than a test machine's disk, as a nearly full disk is to a real limit.
    const CheckRun run = run_check(write_config(dir, azure, {.spool_extra = "max_bytes = 4398046511104\n"
                                                                            "segment_bytes = 1073741824\n"}));
    EXPECT_EQ(run.code, 1) << run.output;
    const Step failed = run.first_failure();
    EXPECT_EQ(failed.step, "spool") << run.output;
    EXPECT_TRUE(contains(failed.message, "the disk would fill")) << run.output;
    EXPECT_TRUE(contains(failed.hint, "lower spool.max_bytes")) << run.output;
}

/// A tiny HTTP server on loopback whose every answer carries `date` (the stand-in sends no
/// Date header): 404 to everything, like an ingestion endpoint's root.
class FakeDateServer {
public:
    explicit FakeDateServer(std::string date) : date_(std::move(date)) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        EXPECT_EQ(::listen(fd_, 8), 0);
        socklen_t length = sizeof addr;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &length);
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~FakeDateServer() {
        ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
        thread_.join();
        ::close(fd_);
    }
    [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

private:
    void serve() {
        for (;;) {
            const int client = ::accept(fd_, nullptr, nullptr);
            if (client < 0) return;
            std::string request;
            char buffer[4096];
            ssize_t n = 0;
            while (request.find("\r\n\r\n") == std::string::npos && (n = ::read(client, buffer, sizeof buffer)) > 0)
                request.append(buffer, static_cast<std::size_t>(n));
            const std::string answer = "HTTP/1.1 404 Not Found\r\nDate: " + date_ +
                                       "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            [[maybe_unused]] const auto written = ::write(client, answer.data(), answer.size());
            ::close(client);
        }
    }
    std::string date_;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::thread thread_;
};

TEST(CheckCommand, ClockSkewFromTheDateHeaderFailsAtTheEndpoint) {
    TempDir dir;
    // Two hours behind this machine's clock.
    const std::time_t then = std::time(nullptr) - 7200;
    std::tm tm{};
    ::gmtime_r(&then, &tm);
    char date[64];
    std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    FakeDateServer server(date);
    const int port = free_port();
    write_file(dir.file("cefd.toml"),
               "[receive]\nudp_port = " + std::to_string(port) + "\ntcp_port = " + std::to_string(port) +
                   "\n[spool]\ndir = \"" + dir.file("spool") + "\"\n[azure]\nauth = \"none\"\nendpoint = \"" +
                   server.url() + "\"\ndcr_id = \"dcr-00000000000000000000000000000000\"\ndead_letter_dir = \"" +
                   dir.file("dl") + "\"\n[metrics]\nlisten = \"\"\n");
    const CheckRun run = run_check(dir.file("cefd.toml"));
    EXPECT_EQ(run.code, 1) << run.output;
    const Step failed = run.first_failure();
    EXPECT_EQ(failed.step, "endpoint") << run.output;
    EXPECT_TRUE(contains(failed.message, "clock skew 7")) << run.output;  // 7200 s, give or take
    EXPECT_TRUE(contains(failed.hint, "sync this machine's clock")) << run.output;
}

TEST(CheckCommand, PrivilegedPortWithoutTheCapabilityFailsAtTheListenerNamingIt) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to the nobody user";
    if (run_command("command -v setpriv >/dev/null") != 0) GTEST_SKIP() << "setpriv (util-linux) not installed";
    TempDir dir;
    ::chmod(dir.path().c_str(), 0777);
    // 514 itself may be taken on a shared machine; any port below 1024 needs the capability.
    int port = 0;
    for (int candidate = 700; candidate < 1000 && port == 0; ++candidate) {
        const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(static_cast<std::uint16_t>(candidate));
        if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) port = candidate;
        ::close(fd);
    }
    ASSERT_NE(port, 0);
    write_file(dir.file("cefd.toml"),
               "[receive]\nudp_port = " + std::to_string(port) + "\ntcp_port = 0\n[spool]\ndir = \"" + dir.file("spool") +
                   "\"\n[azure]\nauth = \"none\"\nendpoint = \"https://127.0.0.1:1\"\n"
                   "dcr_id = \"dcr-00000000000000000000000000000000\"\ndead_letter_dir = \"" + dir.file("dl") +
                   "\"\n[metrics]\nlisten = \"\"\n",
               0644);
    std::string out;
    const int code = run_command("setpriv --reuid=nobody --regid=nogroup --clear-groups " + cefd_binary() +
                                     " check --json --config " + dir.file("cefd.toml"),
                                 &out);
    EXPECT_EQ(code, 1) << out;
    EXPECT_TRUE(contains(out, "\"step\":\"listen udp 127.0.0.1:" + std::to_string(port) + "\",\"status\":\"FAIL\"")) << out;
    EXPECT_TRUE(contains(out, "needs CAP_NET_BIND_SERVICE (this process lacks it)")) << out;
    EXPECT_TRUE(contains(out, "AmbientCapabilities=CAP_NET_BIND_SERVICE")) << out;
}

// The test event passed on "nothing pending and a row delivered". An older batch in the spool
// could be that row while the test event's own batch was dead-lettered: here a Syslog batch left
// by an outage (~250 bytes of JSON) is delivered, and the event's batch (~320 bytes; the direct
// request of the ingestion step is ~220) is refused as too large (413) and dead-lettered. The
// step said PASS. Found in review.
TEST(CheckCommand, ATestEventDeadLetteredWhileAnOlderBatchIsDeliveredIsNotAPass) {
    char host[256] = "";
    ::gethostname(host, sizeof host - 1);
    // Both rows carry this host's name (CollectorHostName): a long one pushes the Syslog batch
    // over the limit too.
    if (std::string_view(host).size() > 30) GTEST_SKIP() << "host name too long for the sizes this test relies on";
    TempDir dir;
    {
        TempDir down_dir;
        AzureStandin down(down_dir, {"--outage-s", "3600"});
        Cefd cefd(dir, down, CefdOptions{.extra_toml = "[parse]\nnon_cef = \"syslog_table\"\n"});
        send_udp(cefd.port(), {"<13>Dec  8 01:02:03 host app: a plain syslog line"});
        ASSERT_TRUE(wait_until(30s, [&] { return cefd.metric("cefd_spool_pending_batches") >= 1; }));
        ASSERT_EQ(cefd.stop(), 0);
    }
    TempDir up_dir;
    AzureStandin syslog_only(up_dir, {"--max-json-bytes", "290"});
    const CheckRun run = run_check(write_config(dir, syslog_only));
    EXPECT_NE(run.code, 0) << run.output;
    ASSERT_FALSE(run.steps.empty()) << run.output;
    const Step& event = run.steps.back();
    ASSERT_EQ(event.step, "test event") << run.output;
    EXPECT_EQ(event.status, "FAIL") << run.output;
    EXPECT_TRUE(contains(event.message, "dead-lettered or dropped meanwhile")) << run.output;
    // The ingestion step's direct row and the older batch did go out.
    EXPECT_EQ(syslog_only.row_count(), 2U) << run.output;
}

TEST(CheckCommand, RunningChecksTheRunningInstanceThroughItsMetrics) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure);
    const CheckRun run = run_check(cefd.config_path(), "--running");
    EXPECT_EQ(run.code, 0) << run.output;
    ASSERT_FALSE(run.steps.empty()) << run.output;
    EXPECT_EQ(run.steps.back().step, "test event") << run.output;
    EXPECT_EQ(run.steps.back().status, "PASS") << run.output;
    for (const Step& s : run.steps) EXPECT_NE(s.step.rfind("listen ", 0), 0U) << "--running binds nothing: " << run.output;
    EXPECT_GE(cefd.metric("cefd_send_delivered_rows_total"), 1.0);
}

TEST(CheckCommand, WithoutRunningFailsAtTheListenersOfARunningInstance) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure);
    const CheckRun run = run_check(cefd.config_path());
    EXPECT_EQ(run.code, 1) << run.output;
    const Step failed = run.first_failure();
    EXPECT_EQ(failed.step.rfind("listen ", 0), 0U) << run.output;
    EXPECT_TRUE(contains(failed.hint, "--running")) << run.output;
}

}  // namespace
}  // namespace cefd::test
