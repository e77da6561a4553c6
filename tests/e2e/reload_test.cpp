// SIGHUP reloads, with the real binaries: cefd, two Azure stand-ins and cefd-loadgen.
//   - Under load, a reload that moves delivery to a second stand-in (new endpoint, authority,
//     DCR and stream: a new token from a new tenant endpoint), shrinks batch.max_bytes and
//     raises the log level: every event arrives exactly once across the two stand-ins.
//   - A file with problems: cefd keeps running on its config, logs every problem, counts it.
//   - A new listen port is reported as "needs restart" and the old port keeps receiving.
//   - sd_notify: READY, RELOADING (+ MONOTONIC_USEC), READY, WATCHDOG, STOPPING on a real unix
//     datagram socket named by $NOTIFY_SOCKET, as systemd listens for them.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace cefd::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* second_dcr = "dcr-11111111111111111111111111111111";
constexpr const char* second_stream = "Custom-CefdReloadSecond";

/// `text` with every `from` replaced by `to`; fails the test when `from` is not there.
std::string replace_all(std::string text, const std::string& from, const std::string& to) {
    const auto first = text.find(from);
    EXPECT_NE(first, std::string::npos) << from << " not in the config";
    for (auto at = first; at != std::string::npos; at = text.find(from, at + to.size())) text.replace(at, from.size(), to);
    return text;
}

/// Inserts `lines` right after the `[table]` header.
std::string add_to_table(std::string text, const std::string& table, const std::string& lines) {
    const std::string header = "[" + table + "]\n";
    const auto at = text.find(header);
    EXPECT_NE(at, std::string::npos) << header;
    text.insert(at + header.size(), lines);
    return text;
}

bool log_has(Process& process, const std::string& text) { return process.err().find(text) != std::string::npos; }

std::string cef_line(int n, const std::string& run) {
    return "<134>Oct 11 22:14:15 dt CEF:0|Darktrace|DCIP|6.1|100|Reload test|5|msg=" + run + "-" + std::to_string(n);
}

std::size_t rows_with(const AzureStandin& azure, const std::string& text) {
    std::size_t n = 0;
    for (const auto& line : read_lines(azure.rows_path())) n += line.find(text) != std::string::npos ? 1 : 0;
    return n;
}

TEST(Reload, UnderLoadMovesDeliveryToASecondTargetWithoutLosingOrRepeatingAnEvent) {
    TempDir first_dir, second_dir, dir;
    AzureStandin first(first_dir);
    AzureStandin second(second_dir, {"--dcr-id", second_dcr, "--stream", second_stream});
    // One CA file trusted from the start (ca_file needs a restart): the first stand-in's file
    // with the second one's CA appended. The first stand-in keeps its key in memory.
    write_file(first.ca_file(), read_file(first.ca_file()) + read_file(second.ca_file()));
    Cefd cefd(dir, first, CefdOptions{.linger_ms = 50});

    constexpr int count = 100'000;  // 5 s at 20k/s (issue: reload under 20k/s)
    const std::string run_id = "reload" + std::to_string(::getpid());
    Process loadgen({loadgen_binary(), "--target", "127.0.0.1:" + std::to_string(cefd.port()), "--proto", "tcp",
                     "--run-id", run_id, "--count", std::to_string(count), "--rate", "20000"},
                    dir.path(), "loadgen");
    ASSERT_TRUE(wait_until(30s, [&] { return first.row_count() >= 10'000; })) << cefd.process().err();

    std::string toml = read_file(cefd.config_path());
    toml = replace_all(toml, "endpoint = \"" + first.url() + "\"", "endpoint = \"" + second.url() + "\"");
    toml = replace_all(toml, "authority_host = \"" + first.url() + "\"", "authority_host = \"" + second.url() + "\"");
    toml = replace_all(toml, "dcr-00000000000000000000000000000000", second_dcr);
    toml = replace_all(toml, "stream = \"Custom-CommonSecurityLog\"", std::string("stream = \"") + second_stream + "\"");
    toml = add_to_table(toml, "batch", "max_bytes = 16384\n");
    toml = add_to_table(toml, "runtime", "log_level = \"debug\"\n");
    write_file(cefd.config_path(), toml, 0600);
    ASSERT_EQ(::kill(cefd.process().pid(), SIGHUP), 0);

    ASSERT_TRUE(wait_until(20s, [&] { return log_has(cefd.process(), "reload: " + cefd.config_path() + " reloaded"); }))
        << cefd.process().err();
    EXPECT_TRUE(log_has(cefd.process(), "reload: applied batch.max_bytes (1048576 -> 16384)")) << cefd.process().err();
    EXPECT_TRUE(log_has(cefd.process(), "reload: applied azure.endpoint")) << cefd.process().err();
    EXPECT_TRUE(log_has(cefd.process(), "reload: applied runtime.log_level (\"info\" -> \"debug\")"));
    EXPECT_TRUE(wait_until(20s, [&] { return log_has(cefd.process(), "send: reconfigured"); })) << cefd.process().err();
    EXPECT_FALSE(log_has(cefd.process(), "needs restart")) << cefd.process().err();

    ASSERT_EQ(loadgen.wait(60s), 0) << loadgen.err();
    ASSERT_TRUE(wait_until(60s, [&] { return first.row_count() + second.row_count() >= count; }))
        << first.row_count() << " + " << second.row_count() << "\n" << cefd.process().err();
    EXPECT_GT(second.row_count(), 0U) << "nothing reached the second target";

    // The loadgen's own verdict over both stand-ins' rows: each event n of this run exactly once.
    write_file(dir.file("all.jsonl"), read_file(first.rows_path()) + read_file(second.rows_path()));
    Process verify({loadgen_binary(), "--verify-only", "--run-id", run_id, "--count", std::to_string(count), "--verify",
                    dir.file("all.jsonl"), "--wait-s", "1"},
                   dir.path(), "verify");
    EXPECT_EQ(verify.wait(60s), 0) << verify.out() << verify.err();
    EXPECT_NE(verify.out().find("\"lost\":0"), std::string::npos) << verify.out();
    EXPECT_NE(verify.out().find("\"duplicated\":0"), std::string::npos) << verify.out();

    // The second stand-in got batches under the new limit: at 20,000 events/s and 50 ms linger
    // the old 1 MiB limit makes batches of about 300 KB of JSON.
    simdjson::dom::parser parser;
    simdjson::dom::element stats;
    ASSERT_EQ(parser.parse(second.stats()).get(stats), simdjson::SUCCESS) << second.stats();
    std::uint64_t json_bytes = 0, accepted = 0;
    ASSERT_EQ(stats["bytes_json"].get(json_bytes), simdjson::SUCCESS);
    ASSERT_EQ(stats["accepted_requests"].get(accepted), simdjson::SUCCESS);
    ASSERT_GT(accepted, 0U);
    EXPECT_LE(json_bytes / accepted, 16'384U) << second.stats();
    EXPECT_EQ(cefd.metric("cefd_config_reloads_total{result=\"ok\"}"), 1.0);
    EXPECT_EQ(cefd.metric("cefd_config_reloads_total{result=\"invalid\"}"), 0.0);
    EXPECT_GT(cefd.metric("cefd_config_last_reload_success_timestamp_seconds"), 1.6e9);
    EXPECT_EQ(cefd.metric("cefd_send_dead_lettered_batches_total"), 0.0);
    EXPECT_EQ(cefd.stop(), 0);
}

TEST(Reload, AnInvalidFileKeepsTheRunningConfigAndLogsEveryProblem) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure);
    const std::string good = read_file(cefd.config_path());
    std::string bad = add_to_table(good, "batch", "linger_ms = 0\nmax_bytes = 16384\n");
    bad = replace_all(bad, "linger_ms = 100\n", "");
    bad = add_to_table(bad, "receive", "bogus_key = 1\n");
    bad = add_to_table(bad, "dedupe", "max_entries = 3000\n");
    write_file(cefd.config_path(), bad, 0600);
    ASSERT_EQ(::kill(cefd.process().pid(), SIGHUP), 0);

    ASSERT_TRUE(wait_until(20s, [&] { return cefd.metric("cefd_config_reloads_total{result=\"invalid\"}") == 1.0; }))
        << cefd.process().err();
    Process& p = cefd.process();
    EXPECT_TRUE(log_has(p, "the running config stays")) << p.err();
    EXPECT_TRUE(log_has(p, "reload: batch.linger_ms: must be between 1 and 60000 (got 0)")) << p.err();
    EXPECT_TRUE(log_has(p, "reload: receive.bogus_key: unknown key")) << p.err();
    EXPECT_TRUE(log_has(p, "reload: dedupe.max_entries: must be a power of two")) << p.err();
    EXPECT_FALSE(log_has(p, "reload: applied")) << p.err();
    EXPECT_EQ(cefd.metric("cefd_config_reloads_total{result=\"ok\"}"), 0.0);
    EXPECT_EQ(cefd.metric("cefd_config_last_reload_success_timestamp_seconds"), 0.0);

    // Still running, on the old settings: events arrive.
    ASSERT_TRUE(p.running());
    std::vector<std::string> lines;
    for (int i = 0; i < 50; ++i) lines.push_back(cef_line(i, "invalid"));
    send_tcp(cefd.port(), lines);
    EXPECT_TRUE(wait_until(20s, [&] { return rows_with(azure, "invalid-") == lines.size(); })) << p.err();

    // The file fixed: the next SIGHUP applies it and counts ok.
    write_file(cefd.config_path(), add_to_table(good, "dedupe", "max_entries = 4096\n"), 0600);
    ASSERT_EQ(::kill(p.pid(), SIGHUP), 0);
    EXPECT_TRUE(wait_until(20s, [&] { return cefd.metric("cefd_config_reloads_total{result=\"ok\"}") == 1.0; }));
    EXPECT_TRUE(log_has(p, "reload: applied dedupe.max_entries (65536 -> 4096)")) << p.err();
    EXPECT_EQ(cefd.stop(), 0);
}

TEST(Reload, ANewListenPortNeedsARestartAndTheOldPortKeepsReceiving) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure);
    const int old_port = cefd.port();
    const int new_port = free_port();
    std::string toml = read_file(cefd.config_path());
    toml = replace_all(toml, "udp_port = " + std::to_string(old_port), "udp_port = " + std::to_string(new_port));
    toml = replace_all(toml, "[runtime]\nworkers = 2", "[runtime]\nworkers = 3");
    write_file(cefd.config_path(), toml, 0600);
    ASSERT_EQ(::kill(cefd.process().pid(), SIGHUP), 0);

    Process& p = cefd.process();
    ASSERT_TRUE(wait_until(20s, [&] { return cefd.metric("cefd_config_reloads_total{result=\"ok\"}") == 1.0; })) << p.err();
    EXPECT_TRUE(log_has(p, "reload: needs restart: receive.udp_port (running " + std::to_string(old_port) + ", file " +
                               std::to_string(new_port) + ")"))
        << p.err();
    EXPECT_TRUE(log_has(p, "reload: needs restart: runtime.workers (running 2, file 3)")) << p.err();
    EXPECT_EQ(cefd.metric("cefd_worker_messages_total"), 0.0);

    std::vector<std::string> lines;
    for (int i = 0; i < 40; ++i) lines.push_back(cef_line(i, "oldport"));
    send_udp(old_port, lines);
    EXPECT_TRUE(wait_until(20s, [&] { return rows_with(azure, "oldport-") == lines.size(); })) << p.err();
    EXPECT_EQ(cefd.stop(), 0);
}

/// A datagram socket at a path, named by $NOTIFY_SOCKET while it lives (as systemd does).
class NotifySocket {
public:
    explicit NotifySocket(const std::string& path) : fd_(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
        bound_ = ::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
        ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
    }
    ~NotifySocket() {
        ::unsetenv("NOTIFY_SOCKET");
        ::close(fd_);
    }
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;
    [[nodiscard]] bool bound() const { return bound_; }

    /// Every datagram that arrived so far (waits up to `timeout_ms` for the first).
    std::vector<std::string> drain(int timeout_ms) {
        std::vector<std::string> out;
        pollfd pfd{.fd = fd_, .events = POLLIN, .revents = 0};
        while (::poll(&pfd, 1, out.empty() ? timeout_ms : 0) == 1) {
            char buffer[4096];
            const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
            if (n < 0) break;
            out.emplace_back(buffer, static_cast<std::size_t>(n));
        }
        return out;
    }

private:
    int fd_;
    bool bound_ = false;
};

TEST(Reload, TellsTheServiceManagerReadyReloadingStoppingAndFeedsTheWatchdog) {
    TempDir dir;
    AzureStandin azure(dir);
    NotifySocket notify(dir.file("notify"));
    ASSERT_TRUE(notify.bound());
    ::setenv("WATCHDOG_USEC", "200000", 1);  // 200 ms: cefd pings every 100 ms
    Cefd cefd(dir, azure);
    ::unsetenv("WATCHDOG_USEC");

    std::vector<std::string> states;
    const auto collect = [&](std::chrono::milliseconds timeout, const std::string& until) {
        return wait_until(timeout, [&] {
            for (auto& s : notify.drain(10)) states.push_back(std::move(s));
            for (const auto& s : states)
                if (s.starts_with(until)) return true;
            return false;
        });
    };
    ASSERT_TRUE(collect(10s, "READY=1")) << cefd.process().err();
    ASSERT_TRUE(collect(5s, "WATCHDOG=1"));
    const std::size_t after_start = states.size();

    ASSERT_EQ(::kill(cefd.process().pid(), SIGHUP), 0);
    ASSERT_TRUE(wait_until(10s, [&] {
        for (auto& s : notify.drain(10)) states.push_back(std::move(s));
        std::size_t ready = 0;
        for (std::size_t i = after_start; i < states.size(); ++i) ready += states[i].starts_with("READY=1") ? 1 : 0;
        return ready == 1;
    }));
    EXPECT_EQ(cefd.stop(), 0);
    for (auto& s : notify.drain(100)) states.push_back(std::move(s));

    // The order of everything but the watchdog pings.
    std::vector<std::string> order;
    std::size_t watchdogs = 0;
    for (const auto& s : states) {
        if (s == "WATCHDOG=1") {
            ++watchdogs;
            continue;
        }
        order.push_back(s.substr(0, s.find('\n')));
        if (s.starts_with("RELOADING=1")) {
            EXPECT_NE(s.find("\nMONOTONIC_USEC="), std::string::npos) << s;
        }
        if (s.starts_with("READY=1")) {
            EXPECT_NE(s.find("\nSTATUS="), std::string::npos) << s;
        }
    }
    EXPECT_GE(watchdogs, 1U);
    ASSERT_EQ(order, (std::vector<std::string>{"READY=1", "RELOADING=1", "READY=1", "STOPPING=1"}));
}

}  // namespace
}  // namespace cefd::test
