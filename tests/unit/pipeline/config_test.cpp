#include "engine/pipeline/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "engine/pipeline/replay_dead_letter.h"
#include "stages/send/body.h"
#include "stages/send/dead_letter.h"
#include "tests/support/support.h"

namespace cefd {
namespace {

bool has_error(const ConfigErrors& errors, const std::string& text) {
    return std::any_of(errors.list().begin(), errors.list().end(),
                       [&](const std::string& e) { return e.find(text) != std::string::npos; });
}

// What every runnable config must name: where to send, and as whom.
const std::string azure_minimal = R"(
[azure]
endpoint = "https://x.westeurope-1.ingest.monitor.azure.com"
dcr_id = "dcr-0123456789abcdef0123456789abcdef"
auth = "managed_identity"
)";

std::string all(const ConfigErrors& errors) {
    std::string out;
    for (const auto& e : errors.list()) out += e + "\n";
    return out;
}

TEST(Config, AnEmptyConfigNamesWhatMustBeSet) {
    ConfigErrors errors;
    EXPECT_FALSE(load_config_text("", "<test>", errors));
    EXPECT_TRUE(has_error(errors, "azure.endpoint")) << all(errors);
    EXPECT_TRUE(has_error(errors, "azure.dcr_id")) << all(errors);
}

TEST(Config, UnsetKeysTakeTheDocumentedDefaults) {
    ConfigErrors errors;
    auto config = load_config_text(azure_minimal, "<test>", errors);
    ASSERT_TRUE(config) << all(errors);
    EXPECT_EQ(config->receive.listen, "127.0.0.1");
    EXPECT_EQ(config->receive.udp_port, 5514);
    EXPECT_EQ(config->batch.max_bytes, 1'048'576U);
    EXPECT_EQ(config->azure.target.stream, "Custom-CommonSecurityLog");
    EXPECT_EQ(config->azure.target.syslog_stream, "Custom-Syslog");
    EXPECT_EQ(config->metrics.listen, "127.0.0.1:9514");
    EXPECT_TRUE(errors.warnings().empty()) << errors.warnings().front();
}

std::string all_warnings(const ConfigErrors& errors) {
    std::string out;
    for (const auto& w : errors.warnings()) out += w + "\n";
    return out;
}

// Azure takes data only on streams declared in the DCR, and declared names start with Custom-.
// A config from before Custom-Syslog (syslog_stream = "Microsoft-Syslog") still loads, so that
// it keeps running, but check-config says why its Syslog rows are refused.
TEST(Config, AStreamAzureCannotDeclareIsAWarningNotAnError) {
    ConfigErrors errors;
    auto config = load_config_text(azure_minimal +
                                       "syslog_stream = \"Microsoft-Syslog\"\n"
                                       "[[azure.targets]]\n"
                                       "endpoint = \"https://y.westeurope-1.ingest.monitor.azure.com\"\n"
                                       "dcr_id = \"dcr-0123456789abcdef0123456789abcdef\"\n"
                                       "stream = \"Microsoft-CommonSecurityLog\"\n",
                                   "<test>", errors);
    ASSERT_TRUE(config) << all(errors);
    EXPECT_EQ(config->azure.target.syslog_stream, "Microsoft-Syslog");
    ASSERT_EQ(errors.warnings().size(), 2u) << all_warnings(errors);
    EXPECT_EQ(errors.warnings()[0],
              "azure.syslog_stream: \"Microsoft-Syslog\": the Logs Ingestion API accepts only streams declared in "
              "the DCR, which start with Custom-; deploy/azure declares Custom-Syslog");
    EXPECT_EQ(errors.warnings()[1].rfind("azure.targets[0].stream: \"Microsoft-CommonSecurityLog\": ", 0), 0u)
        << all_warnings(errors);
    EXPECT_NE(errors.warnings()[1].find("deploy/azure declares Custom-CommonSecurityLog"), std::string::npos)
        << all_warnings(errors);

    ConfigErrors custom;
    ASSERT_TRUE(load_config_text(azure_minimal + "stream = \"Custom-Mine\"\nsyslog_stream = \"Custom-MySyslog\"\n",
                                 "<test>", custom))
        << all(custom);
    EXPECT_TRUE(custom.warnings().empty()) << all_warnings(custom);
}

// Posts to Microsoft-Syslog were refused (404) and dead-lettered. Replayed after the switch to
// Custom-Syslog, they must still be Syslog batches, not CommonSecurityLog ones that Azure would
// accept with every Syslog column dropped.
TEST(Config, DeadLettersOfTheOldSyslogStreamReplayAsSyslog) {
    test::TempDir tmp;
    const std::string json = R"([{"TimeGenerated":"2026-01-02T03:04:05Z","SyslogMessage":"hi"}])";
    SealedBatch batch;
    batch.body = gzip_body(json);
    batch.rows = 1;
    batch.json_bytes = static_cast<std::uint32_t>(json.size());
    batch.table = Table::syslog;
    ASSERT_TRUE(write_dead_letter(tmp.path(), batch,
                                  DeadLetter{.status = 404,
                                             .request_id = "r",
                                             .endpoint = "https://dce.example",
                                             .dcr_id = "dcr-1",
                                             .stream = "Microsoft-Syslog",
                                             .response = "not declared"}));
    const auto bases = list_dead_letters(tmp.path());
    ASSERT_EQ(bases.size(), 1u);
    ConfigErrors errors;
    const auto config = load_config_text(azure_minimal, "<test>", errors);
    ASSERT_TRUE(config) << all(errors);
    const std::vector<std::string> streams = dead_letter_syslog_streams(config->azure);
    EXPECT_EQ(streams.front(), "Custom-Syslog");
    auto letter = read_dead_letter(bases[0], streams);
    ASSERT_TRUE(letter) << letter.error().describe();
    EXPECT_EQ(letter->stream, "Microsoft-Syslog");
    EXPECT_EQ(letter->batch.table, Table::syslog);
}

TEST(Config, ReadsTheKeysOtherToolsRelyOn) {
    ConfigErrors errors;
    auto config = load_config_text(R"(
[receive]
listen = "0.0.0.0"
udp_port = 514
tcp_port = 0
[azure]
endpoint = "https://x.westeurope-1.ingest.monitor.azure.com"
dcr_id = "dcr-0123456789abcdef0123456789abcdef"
stream = "Custom-CommonSecurityLog"
auth = "managed_identity"
authority_host = "https://login.microsoftonline.us"
tenant_id = "t"
client_id = "c"
ca_file = "/etc/ssl/certs/ca-certificates.crt"
[spool]
dir = "/tmp/spool"
[metrics]
listen = "127.0.0.1:9999"
)", "<test>", errors);
    ASSERT_TRUE(config) << all(errors);
    EXPECT_EQ(config->receive.listen, "0.0.0.0");
    EXPECT_EQ(config->receive.udp_port, 514);
    EXPECT_EQ(config->receive.tcp_port, 0);
    EXPECT_EQ(config->azure.auth, AzureConfig::Auth::managed_identity);
    EXPECT_EQ(config->azure.authority_host, "https://login.microsoftonline.us");
    EXPECT_EQ(config->azure.target.dcr_id, "dcr-0123456789abcdef0123456789abcdef");
    EXPECT_EQ(config->spool.dir, "/tmp/spool");
    EXPECT_EQ(config->metrics.listen, "127.0.0.1:9999");
}

TEST(Config, ReportsEveryProblemWithItsFullKeyName) {
    ConfigErrors errors;
    auto config = load_config_text(R"(
[receive]
udp_port = -1
tcp_prot = 5514
engine = "epoll"
[runtime]
ring_bytes = 1000
[azure]
max_in_flight = "many"
[[azure.targets]]
endpoint = "https://a"
colour = "blue"
[extra]
)", "<test>", errors);
    EXPECT_FALSE(config);
    EXPECT_TRUE(has_error(errors, "receive.udp_port")) << all(errors);
    EXPECT_TRUE(has_error(errors, "receive.tcp_prot: unknown key")) << all(errors);
    EXPECT_TRUE(has_error(errors, "receive.engine: must be one of")) << all(errors);
    EXPECT_TRUE(has_error(errors, "runtime.ring_bytes")) << all(errors);
    EXPECT_TRUE(has_error(errors, "azure.max_in_flight: must be an integer")) << all(errors);
    EXPECT_TRUE(has_error(errors, "azure.targets[0].colour: unknown key")) << all(errors);
    EXPECT_TRUE(has_error(errors, "extra: unknown table")) << all(errors);
}

TEST(Config, TheSenderDrainMustFitInTheShutdownTime) {
    ConfigErrors errors;
    EXPECT_FALSE(load_config_text(azure_minimal + "drain_timeout_ms = 20000\n[runtime]\nshutdown_timeout_ms = 15000\n",
                                  "<test>", errors));
    EXPECT_TRUE(has_error(errors, "azure.drain_timeout_ms: must be less than runtime.shutdown_timeout_ms")) << all(errors);
}

// The receive drain runs before the sender's: together they must fit too, or the stop is cut.
TEST(Config, TheReceiveAndSenderDrainsTogetherOverTheShutdownTimeAreAWarning) {
    ConfigErrors errors;
    ASSERT_TRUE(load_config_text(azure_minimal + "drain_timeout_ms = 10000\n[receive]\ndrain_timeout_ms = 5000\n"
                                                 "[runtime]\nshutdown_timeout_ms = 15000\n",
                                 "<test>", errors))
        << all(errors);
    ASSERT_EQ(errors.warnings().size(), 1U);
    EXPECT_EQ(errors.warnings()[0].rfind("receive.drain_timeout_ms: ", 0), 0U) << errors.warnings()[0];
    ConfigErrors fine;  // the defaults: 1 s + 10 s of 15 s
    ASSERT_TRUE(load_config_text(azure_minimal, "<test>", fine)) << all(fine);
    EXPECT_TRUE(fine.warnings().empty()) << fine.warnings().front();
    // The 1.2 s margin (counting and io_uring's cancels): 4 s + 10 s + 1.2 s reach 15 s, 3 s do not.
    ConfigErrors close_call;
    ASSERT_TRUE(load_config_text(azure_minimal + "[receive]\ndrain_timeout_ms = 4000\n", "<test>", close_call));
    EXPECT_EQ(close_call.warnings().size(), 1U);
    ConfigErrors inside;
    ASSERT_TRUE(load_config_text(azure_minimal + "[receive]\ndrain_timeout_ms = 3000\n", "<test>", inside));
    EXPECT_TRUE(inside.warnings().empty()) << inside.warnings().front();
    ConfigErrors over;
    EXPECT_FALSE(load_config_text(azure_minimal + "[receive]\ndrain_timeout_ms = 60001\n", "<test>", over));
}

// The metrics endpoint and a receive listener on one TCP port: refused before start, not a
// bind failure (or, with SO_REUSEPORT, one port serving both) at start.
// The shipped unit SIGKILLs 60 s after SIGTERM: a drain allowed longer is cut without a word.
TEST(Config, AShutdownLongerThanTheUnitsStopTimeoutIsAWarning) {
    ConfigErrors errors;
    ASSERT_TRUE(load_config_text(azure_minimal + "[runtime]\nshutdown_timeout_ms = 120000\n", "<test>", errors))
        << all(errors);
    ASSERT_EQ(errors.warnings().size(), 1U);
    EXPECT_NE(errors.warnings()[0].find("runtime.shutdown_timeout_ms: "), std::string::npos) << errors.warnings()[0];
    EXPECT_NE(errors.warnings()[0].find("TimeoutStopSec"), std::string::npos) << errors.warnings()[0];
    ConfigErrors fine;
    ASSERT_TRUE(load_config_text(azure_minimal + "[runtime]\nshutdown_timeout_ms = 50000\n", "<test>", fine));
    EXPECT_TRUE(fine.warnings().empty());
}

TEST(Config, TheMetricsPortMustNotBeAReceivePort) {
    ConfigErrors errors;
    EXPECT_FALSE(load_config_text(azure_minimal + "[receive]\ntcp_port = 9514\n", "<test>", errors));
    EXPECT_TRUE(has_error(errors, "metrics.listen: port 9514 is also receive.tcp_port")) << all(errors);

    errors = {};
    EXPECT_FALSE(load_config_text(azure_minimal + "[receive]\nlisten = \"::\"\ntcp_port = 6514\n"
                                                  "[metrics]\nlisten = \"[::1]:6514\"\n",
                                  "<test>", errors));
    EXPECT_TRUE(has_error(errors, "metrics.listen: port 6514 is also receive.tcp_port")) << all(errors);

    errors = {};
    EXPECT_FALSE(load_config_text(azure_minimal + "[receive]\ntls_port = 9514\ntls_cert_file = \"/nonexistent.pem\"\n"
                                                  "tls_key_file = \"/nonexistent.key\"\n",
                                  "<test>", errors));
    EXPECT_TRUE(has_error(errors, "metrics.listen: port 9514 is also receive.tls_port")) << all(errors);

    // Other addresses, UDP, or TLS off: no clash.
    for (const std::string extra :
         {"[receive]\nlisten = \"10.0.0.5\"\ntcp_port = 9514\n", "[receive]\nudp_port = 9514\n",
          "[receive]\ntls_port = 9514\n", "[receive]\ntcp_port = 9514\n[metrics]\nlisten = \"\"\n"}) {
        errors = {};
        load_config_text(azure_minimal + extra, "<test>", errors);
        EXPECT_FALSE(has_error(errors, "metrics.listen")) << extra << all(errors);
    }
}

// azure.proxy may carry user:password@. A SIGHUP that changed it logged the reload diff with
// both passwords, and a proxy with a wrong scheme put it in check-config's message. Found in
// review.
TEST(Config, AProxyPasswordNeverAppearsInTheReloadDiff) {
    ConfigErrors errors;
    auto running = load_config_text(azure_minimal + "proxy = \"http://svc:hunter2@proxy.corp:3128\"\n", "<a>", errors);
    ASSERT_TRUE(running) << all(errors);
    auto file = load_config_text(azure_minimal + "proxy = \"http://svc:hunter3@proxy2.corp:3128\"\n", "<b>", errors);
    ASSERT_TRUE(file) << all(errors);
    bool proxy_changed = false;
    for (const ConfigChange& change : reload_changes(*running, *file)) {
        proxy_changed = proxy_changed || change.key->full_name() == "azure.proxy";
        EXPECT_EQ(change.running.find("hunter2"), std::string::npos)
            << change.key->full_name() << ": " << change.running;
        EXPECT_EQ(change.file.find("hunter3"), std::string::npos) << change.key->full_name() << ": " << change.file;
        if (change.key->full_name() == "azure.proxy") {
            EXPECT_NE(change.file.find("proxy2.corp"), std::string::npos) << change.file;
        }
    }
    EXPECT_TRUE(proxy_changed);
    // Only the password changed: still a change (a restart applies it), still hidden.
    auto same_host =
        load_config_text(azure_minimal + "proxy = \"http://svc:hunter4@proxy.corp:3128\"\n", "<c>", errors);
    ASSERT_TRUE(same_host) << all(errors);
    const auto changes = reload_changes(*running, *same_host);
    ASSERT_EQ(changes.size(), 1U);
    EXPECT_EQ(changes[0].file.find("hunter4"), std::string::npos) << changes[0].file;
}

TEST(Config, AProxyPasswordNeverAppearsInAConfigError) {
    ConfigErrors errors;
    EXPECT_FALSE(load_config_text(azure_minimal + "proxy = \"ftp://svc:hunter2@proxy.corp:3128\"\n", "<a>", errors));
    EXPECT_NE(all(errors).find("azure.proxy"), std::string::npos) << all(errors);
    EXPECT_EQ(all(errors).find("hunter2"), std::string::npos) << all(errors);
}

TEST(Config, ReportsTomlSyntaxErrorsWithLineAndColumn) {
    ConfigErrors errors;
    EXPECT_FALSE(load_config_text("[receive]\nudp_port = = 3\n", "cefd.toml", errors));
    EXPECT_TRUE(has_error(errors, "cefd.toml:2:")) << all(errors);
}

TEST(Config, ReadsTheSecretFileAndNeverPrintsIt) {
    test::TempDir dir;
    test::write_file(dir.file("secret"), "s3cret-value\n", 0600);
    ConfigErrors errors;
    auto config = load_config_text("[azure]\nendpoint = \"https://x.westeurope-1.ingest.monitor.azure.com\"\n"
                                   "dcr_id = \"dcr-0123456789abcdef0123456789abcdef\"\n"
                                   "auth = \"client_secret\"\ntenant_id = \"t\"\nclient_id = \"c\"\n"
                                   "client_secret_file = \"" + dir.file("secret") + "\"\n", "<test>", errors);
    ASSERT_TRUE(config) << all(errors);
    EXPECT_EQ(config->azure.client_secret.reveal(), "s3cret-value");
    EXPECT_EQ(config->azure.client_secret.redacted(), "***");
}

TEST(Config, RefusesASecretFileOthersCanRead) {
    test::TempDir dir;
    test::write_file(dir.file("secret"), "s3cret-value\n", 0644);
    ConfigErrors errors;
    EXPECT_FALSE(load_config_text("[azure]\nclient_secret_file = \"" + dir.file("secret") + "\"\n", "<test>", errors));
    EXPECT_TRUE(has_error(errors, "readable by other users")) << all(errors);
    EXPECT_FALSE(has_error(errors, "s3cret")) << "the secret must never appear in a message";
}

TEST(Config, AMissingSecretFileSaysSoWithTheErrno) {
    test::TempDir dir;
    ConfigErrors errors;
    EXPECT_FALSE(load_config_text("[azure]\nclient_secret_file = \"" + dir.file("nowhere") + "\"\n", "<test>", errors));
    EXPECT_TRUE(has_error(errors, "does not exist (errno 2: No such file or directory)")) << all(errors);
}

TEST(Config, AnUnreadableSecretFileSaysPermissionDeniedNotMissing) {
    if (::geteuid() == 0) GTEST_SKIP() << "root reads any file: mode 000 denies nothing";
    test::TempDir dir;
    test::write_file(dir.file("secret"), "s3cret-value\n", 0000);
    ConfigErrors errors;
    EXPECT_FALSE(load_config_text("[azure]\nclient_secret_file = \"" + dir.file("secret") + "\"\n", "<test>", errors));
    EXPECT_TRUE(has_error(errors, "errno 13: Permission denied")) << all(errors);
    EXPECT_FALSE(has_error(errors, "does not exist")) << all(errors);
}

TEST(Config, ASecretFileThatIsADirectoryIsReportedAsADirectory) {
    test::TempDir dir;
    ConfigErrors errors;
    EXPECT_FALSE(load_config_text("[azure]\nclient_secret_file = \"" + dir.path() + "\"\n", "<test>", errors));
    EXPECT_TRUE(has_error(errors, "is a directory")) << all(errors);
    EXPECT_FALSE(has_error(errors, "readable by other users")) << all(errors);
}

TEST(Config, TheParseScopeNeedsOnlyParseAndReceive) {
    const std::string text = "[parse]\nnon_cef = \"syslog_table\"\n[receive]\nudp_port = 0\n"
                             "[azure]\nendpoint = \"https://x\"\n";
    ConfigErrors errors;
    auto config = load_config_text(text, "<test>", errors, ConfigScope::parse);
    ASSERT_TRUE(config) << all(errors);
    EXPECT_EQ(config->parse.non_cef, ParseConfig::NonCef::syslog_table);
    ConfigErrors full;
    EXPECT_FALSE(load_config_text(text, "<test>", full)) << "run still needs a complete [azure]";
    ConfigErrors bad;
    EXPECT_FALSE(load_config_text("[parse]\nnon_cef = \"maybe\"\n", "<test>", bad, ConfigScope::parse));
    EXPECT_TRUE(has_error(bad, "parse.non_cef")) << all(bad);
}

TEST(Config, LoadsTheExampleConfigWithEveryKey) {
    test::TempDir dir;
    std::string example = test::read_file(test::source_path("deploy/cefd.example.toml"));
    const std::string secret_path = "/etc/cefd/client-secret";
    example.replace(example.find(secret_path), secret_path.size(), dir.file("secret"));
    test::write_file(dir.file("secret"), "x\n", 0600);
    ConfigErrors errors;
    auto config = load_config_text(example, "deploy/cefd.example.toml", errors);
    ASSERT_TRUE(config) << all(errors);
    // The example must show the defaults: loading it equals loading nothing, apart from the
    // values an operator has to fill in.
    ConfigErrors none;
    auto defaults = load_config_text(azure_minimal, "<minimal>", none);
    ASSERT_TRUE(defaults) << all(none);
    EXPECT_EQ(config->batch.max_bytes, defaults->batch.max_bytes);
    EXPECT_EQ(config->batch.linger_ms, defaults->batch.linger_ms);
    EXPECT_EQ(config->receive.datagram_bytes_max, defaults->receive.datagram_bytes_max);
    EXPECT_EQ(config->receive.buffers_per_core, defaults->receive.buffers_per_core);
    EXPECT_EQ(config->dedupe.window_ms, defaults->dedupe.window_ms);
    EXPECT_EQ(config->spool.max_bytes, defaults->spool.max_bytes);
    EXPECT_EQ(config->spool.segment_bytes, defaults->spool.segment_bytes);
    EXPECT_EQ(config->parse.field_bytes_max, defaults->parse.field_bytes_max);
    EXPECT_EQ(config->runtime.ring_bytes, defaults->runtime.ring_bytes);
    EXPECT_EQ(config->azure.max_in_flight, defaults->azure.max_in_flight);
}

// The example is the key reference users read: it names every key of config_keys() under its
// documented (not its old) name, and no key that does not exist.
TEST(Config, TheExampleConfigNamesExactlyTheKeysOfTheKeyTable) {
    const std::string example = test::read_file(test::source_path("deploy/cefd.example.toml"));
    std::set<std::string> in_example;
    std::string table;
    bool in_array = false;
    std::size_t start = 0;
    while (start < example.size()) {
        std::size_t end = example.find('\n', start);
        if (end == std::string::npos) end = example.size();
        const std::string line = example.substr(start, end - start);
        start = end + 1;
        if (line.rfind("[[", 0) == 0) { in_example.insert(line.substr(2, line.find("]]") - 2)); continue; }
        if (line.rfind("# [[", 0) == 0) {  // a commented-out array table: its keys are its own
            in_example.insert(line.substr(4, line.find("]]") - 4));
            in_array = true;
            continue;
        }
        if (line.rfind('[', 0) == 0) { table = line.substr(1, line.find(']') - 1); in_array = false; continue; }
        // "key = v" and a commented-out "# key = v" (a key shown but not set) both name a key.
        const std::size_t from = line.rfind("# ", 0) == 0 ? 2 : 0;
        if (in_array && from == 2) continue;
        if (line.size() <= from || !std::islower(static_cast<unsigned char>(line[from]))) continue;
        const auto eq = line.find(" =", from);
        const std::string name = line.substr(from, eq == std::string::npos ? 0 : eq - from);
        if (eq != std::string::npos && !table.empty() && name.find(' ') == std::string::npos)
            in_example.insert(table + "." + name);
    }
    std::set<std::string> in_table;
    for (const ConfigKey& key : config_keys()) in_table.insert(key.full_name());
    for (const auto& name : in_table) EXPECT_TRUE(in_example.count(name)) << name << " is missing from the example";
    for (const auto& name : in_example) EXPECT_TRUE(in_table.count(name)) << name << " in the example is not a key";
}

TEST(Config, OldKeyNamesStillLoadAndBothAtOnceIsAnError) {
    ConfigErrors errors;
    auto config = load_config_text(std::string(azure_minimal) + "\n[receive]\ndatagram_bytes_max = 2048\n",
                                   "<test>", errors);
    ASSERT_TRUE(config) << all(errors);
    EXPECT_EQ(config->receive.datagram_bytes_max, 2048u);
    ConfigErrors both;
    EXPECT_FALSE(load_config_text(std::string(azure_minimal) +
                                      "\n[receive]\ndatagram_bytes_max = 2048\nmax_datagram_bytes = 4096\n",
                                  "<test>", both));
    EXPECT_TRUE(has_error(both, "receive.max_datagram_bytes")) << all(both);
}

}  // namespace
}  // namespace cefd
