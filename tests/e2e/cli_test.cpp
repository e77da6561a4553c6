// The command line: check-config, parse, --version, --help, and start-up failures.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "tests/e2e/harness.h"

namespace cefd::test {
namespace {

std::string quoted(const std::string& s) { return "'" + s + "'"; }

TEST(CheckConfig, ReportsEveryProblemAtOnceWithFullKeyNames) {
    TempDir dir;
    write_file(dir.file("bad.toml"),
               "[receive]\nudp_port = 70000\nlisten = 5\nbogus = 1\n"
               "[batch]\nmax_bytes = 2000000\n"
               "[spool]\nwhen_full = \"sometimes\"\n"
               "[nonsense]\nx = 1\n");
    std::string out;
    const int code = run_command(cefd_binary() + " check-config --config " + dir.file("bad.toml") + " 2>&1", &out);
    EXPECT_EQ(code, 2) << out;
    EXPECT_NE(out.find("receive.udp_port"), std::string::npos) << out;
    EXPECT_NE(out.find("receive.listen"), std::string::npos) << out;
    EXPECT_NE(out.find("receive.bogus: unknown key"), std::string::npos) << out;
    EXPECT_NE(out.find("batch.max_bytes"), std::string::npos) << out;
    EXPECT_NE(out.find("spool.when_full"), std::string::npos) << out;
    EXPECT_NE(out.find("nonsense: unknown table"), std::string::npos) << out;
}

void replace_all(std::string& text, const std::string& from, const std::string& to) {
    for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
}

/// deploy/cefd.example.toml made runnable here: its secret file, dirs and ports the test's own.
std::string runnable_example(const TempDir& dir) {
    std::string example = read_file(source_path("deploy/cefd.example.toml"));
    const std::string secret_path = "/etc/cefd/client-secret";
    example.replace(example.find(secret_path), secret_path.size(), dir.file("client-secret"));
    // check-config also checks this machine (dirs writable, ports free): use the test's own.
    replace_all(example, "/var/lib/cefd", dir.path());
    replace_all(example, "= 5514", "= " + std::to_string(free_port()));
    replace_all(example, "127.0.0.1:9514\"", "127.0.0.1:" + std::to_string(free_port(false)) + "\"");
    write_file(dir.file("client-secret"), "s3cret\n", 0600);
    return example;
}

TEST(CheckConfig, AcceptsTheDocumentedExampleConfig) {
    TempDir dir;
    write_file(dir.file("cefd.toml"), runnable_example(dir));
    std::string out;
    EXPECT_EQ(run_command(cefd_binary() + " check-config --config " + dir.file("cefd.toml") + " 2>&1", &out), 0) << out;
    EXPECT_EQ(out.find("warning"), std::string::npos) << out;
}

// A config from before Custom-Syslog: still valid (exit 0), with a warning that Azure refuses
// the stream.
TEST(CheckConfig, WarnsAboutAStreamTheDcrCannotDeclare) {
    TempDir dir;
    std::string example = runnable_example(dir);
    replace_all(example, "syslog_stream = \"Custom-Syslog\"", "syslog_stream = \"Microsoft-Syslog\"");
    write_file(dir.file("cefd.toml"), example);
    std::string out;
    EXPECT_EQ(run_command(cefd_binary() + " check-config --config " + dir.file("cefd.toml") + " 2>&1", &out), 0) << out;
    EXPECT_NE(out.find("warning: azure.syslog_stream: \"Microsoft-Syslog\": the Logs Ingestion API accepts only "
                       "streams declared in the DCR, which start with Custom-; deploy/azure declares Custom-Syslog"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find(": ok"), std::string::npos) << out;
}

TEST(CheckConfig, RefusesAnInlineSecretInAWorldReadableConfig) {
    TempDir dir;
    const std::string config =
        "[azure]\nendpoint = \"https://x.westeurope-1.ingest.monitor.azure.com\"\n"
        "dcr_id = \"dcr-0123456789abcdef0123456789abcdef\"\ntenant_id = \"t\"\nclient_id = \"c\"\n"
        "client_secret = \"hunter2\"\n";
    write_file(dir.file("cefd.toml"), config, 0644);
    std::string out;
    EXPECT_EQ(run_command(cefd_binary() + " check-config --config " + dir.file("cefd.toml") + " 2>&1", &out), 2);
    EXPECT_NE(out.find("azure.client_secret"), std::string::npos) << out;
    EXPECT_EQ(out.find("hunter2"), std::string::npos) << "the secret itself must never be printed: " << out;
    write_file(dir.file("cefd.toml"), config, 0600);
    EXPECT_EQ(run_command(cefd_binary() + " check-config --config " + dir.file("cefd.toml") + " 2>&1", &out), 0) << out;
}

TEST(ParseCommand, PrintsOneJsonObjectPerInputLine) {
    const std::string samples = source_path("tests/data/synthetic-darktrace-cef.log");
    std::string out;
    ASSERT_EQ(run_command(cefd_binary() + " parse " + quoted(samples), &out), 0);
    const auto input = read_lines(samples);
    std::size_t lines = 0;
    std::size_t pos = 0;
    while ((pos = out.find('\n', pos)) != std::string::npos) {
        ++lines;
        ++pos;
    }
    EXPECT_EQ(lines, input.size()) << "one output line per input line, comments included";
    EXPECT_NE(out.find("\"DeviceVendor\":\"Darktrace\""), std::string::npos) << out.substr(0, 2000);
}

TEST(ParseCommand, ReadsStdinAndReportsLinesThatYieldNoRow) {
    std::string out;
    ASSERT_EQ(run_command("printf 'hello world\\n' | " + cefd_binary() + " parse", &out), 0);
    EXPECT_EQ(out.rfind("{\"error\":", 0), 0U) << out;
}

TEST(Version, PrintsTheVersion) {
    std::string out;
    EXPECT_EQ(run_command(cefd_binary() + " --version", &out), 0);
    EXPECT_EQ(out.rfind("cefd ", 0), 0U) << out;
}

/// A config that `run` accepts without Azure: auth none, a dead endpoint, free ports.
std::string offline_config(const TempDir& dir, int port, const std::string& spool_dir, int metrics_port = 0) {
    return "[receive]\nudp_port = " + std::to_string(port) + "\ntcp_port = " + std::to_string(port) +
           "\n[spool]\ndir = \"" + spool_dir + "\"\n[azure]\nauth = \"none\"\nendpoint = \"https://127.0.0.1:1\"\n"
           "dcr_id = \"dcr-00000000000000000000000000000000\"\ndead_letter_dir = \"" + dir.file("dl") +
           "\"\n[metrics]\nlog_interval_s = 0\nlisten = \"" +
           (metrics_port == 0 ? std::string() : "127.0.0.1:" + std::to_string(metrics_port)) + "\"\n";
}

/// Holds a loopback port (UDP or TCP listener) without SO_REUSEPORT until destroyed.
struct PortHolder {
    int fd = -1;
    PortHolder(int port, bool udp) {
        fd = ::socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(static_cast<std::uint16_t>(port));
        if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ADD_FAILURE() << "cannot hold " << port;
        if (!udp) ::listen(fd, 1);
    }
    ~PortHolder() { ::close(fd); }
};

TEST(CheckConfig, ReportsAnUnwritableSpoolDir) {
    TempDir dir;
    write_file(dir.file("file"), "x");
    // Under a regular file: no user, root included, can create it.
    write_file(dir.file("cefd.toml"), offline_config(dir, free_port(), dir.file("file") + "/spool"));
    std::string out;
    EXPECT_EQ(run_command(cefd_binary() + " check-config --config " + dir.file("cefd.toml") + " 2>&1", &out), 2) << out;
    EXPECT_NE(out.find("spool.dir: " + dir.file("file") + " is not a directory"), std::string::npos) << out;
}

TEST(CheckConfig, ReportsATakenPortAndWhoHoldsIt) {
    TempDir dir;
    const int port = free_port();
    PortHolder holder(port, false);
    write_file(dir.file("cefd.toml"), offline_config(dir, port, dir.file("spool")));
    std::string out;
    EXPECT_EQ(run_command(cefd_binary() + " check-config --config " + dir.file("cefd.toml") + " 2>&1", &out), 2) << out;
    EXPECT_NE(out.find("receive.tcp_port: tcp 127.0.0.1:" + std::to_string(port) + " is in use by pid " +
                       std::to_string(::getpid())),
              std::string::npos)
        << out;
}

TEST(CheckConfig, PassesTheConfigOfTheInstanceRunningWithIt) {
    TempDir dir;
    write_file(dir.file("cefd.toml"), offline_config(dir, free_port(), dir.file("spool"), free_port(false)));
    Process cefd({cefd_binary(), "run", "--config", dir.file("cefd.toml")}, dir.path(), "cefd");
    ASSERT_TRUE(wait_until(std::chrono::seconds(20), [&] { return cefd.err().find("running") != std::string::npos; }))
        << cefd.err();
    // Its ports are taken by the cefd that holds this spool: checking before a restart is fine.
    std::string out;
    EXPECT_EQ(run_command(cefd_binary() + " check-config --config " + dir.file("cefd.toml") + " 2>&1", &out), 0) << out;
    EXPECT_EQ(cefd.stop(SIGTERM), 0);
}

TEST(Help, PrintsUsageToStdoutAndExitsZeroForCefdAndEveryCommand) {
    for (const std::string command : {"", "run ", "check ", "check-config ", "parse "}) {
        std::string out;
        EXPECT_EQ(run_command(cefd_binary() + " " + command + "--help 2>/dev/null", &out), 0) << command;
        EXPECT_EQ(out.rfind("usage: cefd " + command, 0), 0U) << command << ": " << out;
    }
}

TEST(ParseCommand, NeedsOnlyTheParseAndReceiveTables) {
    TempDir dir;
    write_file(dir.file("parse.toml"), "[parse]\nnon_cef = \"syslog_table\"\n[azure]\nendpoint = \"https://x\"\n");
    std::string out;
    ASSERT_EQ(run_command("printf 'hello world\\n' | " + cefd_binary() + " parse --config " + dir.file("parse.toml"), &out), 0)
        << out;
    EXPECT_NE(out.find("\"SyslogMessage\""), std::string::npos) << "syslog_table from [parse] applies: " << out;
}

TEST(Version, NamesTheCommitAndTheLibraries) {
    std::string out;
    EXPECT_EQ(run_command(cefd_binary() + " --version", &out), 0);
    for (const char* part : {"(commit ", "liburing ", "OpenSSL ", "curl ", "libdeflate ", "igzip"})
        EXPECT_NE(out.find(part), std::string::npos) << part << " in " << out;
    EXPECT_EQ(out.find("commit unknown"), std::string::npos) << "built from a git checkout: " << out;
}

/// Runs a command that should exit by itself; a cefd that starts instead is killed after 20 s,
/// so a regression fails the test rather than hanging it. Returns the exit code (-1: it ran on).
int run_bounded(const TempDir& dir, const std::string& command, std::string& err) {
    Process process({"/bin/sh", "-c", "exec " + command}, dir.path(), "bounded");
    const int code = process.wait(std::chrono::seconds(20));
    if (code == -1) process.stop(SIGKILL);
    err = process.err();
    return code;
}

TEST(Run, RefusesASecondInstanceOnTheSamePortsNamingTheFirstsPid) {
    TempDir dir;
    const int port = free_port();
    write_file(dir.file("first.toml"), offline_config(dir, port, dir.file("spool-1"), free_port(false)));
    Process first({cefd_binary(), "run", "--config", dir.file("first.toml")}, dir.path(), "first");
    ASSERT_TRUE(wait_until(std::chrono::seconds(20), [&] { return first.err().find("running") != std::string::npos; }))
        << first.err();
    // Its own spool dir and metrics port: only the syslog ports are shared.
    write_file(dir.file("second.toml"), offline_config(dir, port, dir.file("spool-2")));
    std::string out;
    EXPECT_EQ(run_bounded(dir, cefd_binary() + " run --config " + dir.file("second.toml"), out), 2) << out;
    EXPECT_NE(out.find("another cefd (pid " + std::to_string(first.pid())), std::string::npos) << out;
    EXPECT_NE(out.find(std::to_string(port)), std::string::npos) << out;
    EXPECT_EQ(first.stop(SIGTERM), 0) << first.err();
}

TEST(Run, RefusesASecondInstanceOnTheSameSpoolNamingTheFirstsPid) {
    TempDir dir;
    write_file(dir.file("first.toml"), offline_config(dir, free_port(), dir.file("spool")));
    Process first({cefd_binary(), "run", "--config", dir.file("first.toml")}, dir.path(), "first");
    ASSERT_TRUE(wait_until(std::chrono::seconds(20), [&] { return first.err().find("running") != std::string::npos; }))
        << first.err();
    write_file(dir.file("second.toml"), offline_config(dir, free_port(), dir.file("spool")));
    std::string out;
    EXPECT_EQ(run_bounded(dir, cefd_binary() + " run --config " + dir.file("second.toml"), out), 2) << out;
    EXPECT_NE(out.find("another cefd (pid " + std::to_string(first.pid())), std::string::npos) << out;
    EXPECT_EQ(first.stop(SIGTERM), 0) << first.err();
}

TEST(Run, SighupWithAnUnchangedFileAndTlsOffAppliesNothing) {
    TempDir dir;
    write_file(dir.file("cefd.toml"), offline_config(dir, free_port(), dir.file("spool")));
    Process cefd({cefd_binary(), "run", "--config", dir.file("cefd.toml")}, dir.path(), "cefd");
    ASSERT_TRUE(wait_until(std::chrono::seconds(20), [&] { return cefd.err().find("running") != std::string::npos; }))
        << cefd.err();
    ::kill(cefd.pid(), SIGHUP);
    EXPECT_TRUE(wait_until(std::chrono::seconds(10), [&] { return cefd.err().find("SIGHUP received") != std::string::npos; }))
        << cefd.err();
    EXPECT_EQ(cefd.stop(SIGTERM), 0);
    EXPECT_NE(cefd.err().find("0 changes applied, 0 need a restart"), std::string::npos) << cefd.err();
    EXPECT_EQ(cefd.err().find("reloading TLS"), std::string::npos) << cefd.err();
}

TEST(Run, RaisesTheSoftOpenFileLimitToWhatTheConfigNeeds) {
    if (run_command("command -v prlimit >/dev/null") != 0) GTEST_SKIP() << "prlimit (util-linux) not installed";
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < 8192) GTEST_SKIP() << "hard limit below 8192";
    TempDir dir;
    write_file(dir.file("cefd.toml"), offline_config(dir, free_port(), dir.file("spool")));
    Process cefd({"/bin/sh", "-c", "exec prlimit --nofile=256:8192 " + cefd_binary() + " run --config " + dir.file("cefd.toml")},
                 dir.path(), "cefd");
    ASSERT_TRUE(wait_until(std::chrono::seconds(20), [&] { return cefd.err().find("running") != std::string::npos; }))
        << cefd.err();
    const std::string limits = read_file("/proc/" + std::to_string(cefd.pid()) + "/limits");
    const auto line = limits.find("Max open files");
    ASSERT_NE(line, std::string::npos) << limits;
    const long soft = std::strtol(limits.c_str() + line + std::strlen("Max open files"), nullptr, 10);
    EXPECT_GT(soft, 4096) << limits.substr(line, 80);  // tcp_max_connections alone is 4096
    EXPECT_EQ(cefd.stop(SIGTERM), 0);
}

TEST(Run, RefusesWithAHintWhenTheHardOpenFileLimitIsTooLow) {
    if (run_command("command -v prlimit >/dev/null") != 0) GTEST_SKIP() << "prlimit (util-linux) not installed";
    TempDir dir;
    write_file(dir.file("cefd.toml"), offline_config(dir, free_port(), dir.file("spool")));
    std::string out;
    EXPECT_EQ(run_bounded(dir, "prlimit --nofile=256:256 " + cefd_binary() + " run --config " + dir.file("cefd.toml"), out), 2)
        << out;
    EXPECT_NE(out.find("LimitNOFILE="), std::string::npos) << out;
    EXPECT_NE(out.find("open-file limit"), std::string::npos) << out;
}

TEST(Run, FailsAtStartUpWithExitCode2WhenThePortIsTaken) {
    TempDir dir;
    const int port = free_port();
    // Hold the TCP port without SO_REUSEPORT, so cefd cannot bind it.
    std::string out;
    write_file(dir.file("cefd.toml"),
               "[receive]\nudp_port = 0\ntcp_port = " + std::to_string(port) + "\n[spool]\ndir = \"" + dir.file("spool") +
                   "\"\n[azure]\nauth = \"none\"\nendpoint = \"https://127.0.0.1:1\"\n"
                   "dcr_id = \"dcr-00000000000000000000000000000000\"\ndead_letter_dir = \"" +
                   dir.file("dl") + "\"\n[metrics]\nlisten = \"\"\n");
    int holder = -1;
    {
        holder = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(static_cast<std::uint16_t>(port));
        ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        ASSERT_EQ(::listen(holder, 1), 0);
    }
    const int code = run_command(cefd_binary() + " run --config " + dir.file("cefd.toml") + " 2>&1", &out);
    ::close(holder);
    EXPECT_EQ(code, 2) << out;
    EXPECT_NE(out.find(std::to_string(port)), std::string::npos) << "the message names the port: " << out;
}

/// A port below 1024 that nothing on loopback uses right now, or 0.
int free_privileged_port() {
    for (int port = 600; port < 1000; ++port) {
        const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(static_cast<std::uint16_t>(port));
        const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        ::close(fd);
        if (ok) return port;
    }
    return 0;
}

TEST(Run, ListensOnAPrivilegedPortAsAnUnprivilegedUserWithOnlyNetBindService) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to the nobody user";
    if (run_command("command -v setpriv >/dev/null") != 0) GTEST_SKIP() << "setpriv (util-linux) not installed";
    const int port = free_privileged_port();
    ASSERT_NE(port, 0);
    TempDir dir;
    ::chmod(dir.path().c_str(), 0777);  // the nobody user writes its spool here
    write_file(dir.file("cefd.toml"),
               "[receive]\nudp_port = " + std::to_string(port) + "\ntcp_port = 0\n[spool]\ndir = \"" +
                   dir.file("spool") + "\"\n[azure]\nauth = \"none\"\nendpoint = \"https://127.0.0.1:1\"\n"
                   "dcr_id = \"dcr-00000000000000000000000000000000\"\ndead_letter_dir = \"" + dir.file("dl") +
                   "\"\n[metrics]\nlisten = \"\"\n",
               0644);
    const std::string as_nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups ";
    const std::string with_cap = "--inh-caps=+net_bind_service --ambient-caps=+net_bind_service ";
    const std::string run = cefd_binary() + " run --config " + dir.file("cefd.toml");

    Process plain({"/bin/sh", "-c", as_nobody + run}, dir.path(), "plain");
    EXPECT_EQ(plain.wait(std::chrono::seconds(20)), 2) << plain.err();
    EXPECT_NE(plain.err().find("CAP_NET_BIND_SERVICE"), std::string::npos) << plain.err();

    Process capable({"/bin/sh", "-c", "exec " + as_nobody + with_cap + run}, dir.path(), "capable");
    ASSERT_TRUE(wait_until(std::chrono::seconds(20), [&] { return capable.err().find("running") != std::string::npos; }))
        << capable.err();
    EXPECT_EQ(capable.stop(SIGTERM), 0) << capable.err();
}

}  // namespace
}  // namespace cefd::test
