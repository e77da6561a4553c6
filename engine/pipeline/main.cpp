// cefd: the CEF/syslog collector for Microsoft Sentinel.
//
//   cefd run --config FILE [--log-level LEVEL]   run until SIGTERM/SIGINT, then drain and exit 0
//   cefd check --config FILE [--running] [--json] [--timeout S]   end-to-end self-test (check.h)
//   cefd check rows [--quiet] [FILE...]          lint CommonSecurityLog rows (tools/check/rows_lint.h)
//   cefd check-config --config FILE              print every problem at once; exit 2 on any
//   cefd parse [--config FILE] [FILE...]         one JSON object per input line: the row cefd sends
//   cefd --version | --help; COMMAND --help
//
// Exit codes: 0 ok, 1 runtime failure (or a failed check step), 2 bad usage, bad config or a
// start-up failure.
#include <curl/curl.h>
#include <libdeflate.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <unistd.h>
#if CEFD_HAVE_ISAL
#include <isa-l.h>
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/clock.h"
#include "engine/log.h"
#include "engine/pipeline/check.h"
#include "engine/pipeline/check_startup.h"
#include "engine/pipeline/config.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/replay_dead_letter.h"
#include "engine/row/row_json.h"
#include "engine/runtime/systemd.h"
#include "tools/check/rows_lint.h"

#ifndef CEFD_VERSION
#define CEFD_VERSION "0.1.0"
#endif
#ifndef CEFD_GIT_COMMIT
#define CEFD_GIT_COMMIT "unknown"
#endif
#ifndef CEFD_LIBURING_VERSION
#define CEFD_LIBURING_VERSION "unknown"
#endif

namespace cefd {
namespace {

constexpr const char* usage_text =
    "usage: cefd run --config FILE [--log-level error|warn|info|debug]\n"
    "       cefd check --config FILE [--running] [--json] [--timeout SECONDS]\n"
    "       cefd check rows [--quiet] [FILE...]   (stdin when no FILE)\n"
    "       cefd check-config --config FILE\n"
    "       cefd parse [--config FILE] [FILE...]   (stdin when no FILE)\n"
    "       cefd --version\n"
    "       cefd --help, cefd COMMAND --help\n";

struct CommandHelp {
    const char* name;
    const char* text;
};

constexpr CommandHelp command_help[] = {
    {"run",
     "usage: cefd run --config FILE [--log-level error|warn|info|debug]\n"
     "Receives syslog/CEF, sends CommonSecurityLog rows to Azure, until SIGTERM or SIGINT; then drains\n"
     "and exits 0. SIGHUP re-reads FILE: log level, dedupe, batch limits, Azure targets and credentials\n"
     "change at once (without losing an event), other keys are logged as \"needs restart\"; a bad file\n"
     "keeps the running config. SIGHUP also reloads the TLS certificate, key and client CA. Refuses to start\n"
     "(exit 2) on a bad config, a port or spool dir used by another cefd (naming its pid), or an\n"
     "open-file limit below what the config needs.\n"},
    {"check",
     "usage: cefd check --config FILE [--running] [--json] [--timeout SECONDS]\n"
     "       cefd check rows [--quiet] [FILE...]\n"
     "End-to-end self-test, one PASS/WARN/FAIL line per step with a fix hint: config, open-file limit,\n"
     "listeners, sysctls, io_uring, spool, DNS/TCP/TLS to the endpoint and the authority, a token, one\n"
     "direct request per DCR, and a test CEF event sent through cefd's own listener and confirmed\n"
     "delivered (its marker and the KQL to find it are printed). Without --running it starts the\n"
     "pipeline itself on the configured ports and spool; with --running it checks the running cefd\n"
     "through its /metrics instead. --json prints [{step,status,message,hint}]. --timeout bounds the\n"
     "wait for delivery (default 60). Exit 0 when no step failed (warnings allowed), else 1.\n"
     "`cefd check rows` lints CommonSecurityLog rows, one JSON object per line (stdin when no FILE:\n"
     "`cefd parse`, the stand-in's rows, a Log Analytics export), for what Sentinel's Darktrace solution\n"
     "would not show; the same as cefd-check. --quiet prints only the JSON summary. Exit 0 without\n"
     "errors, 1 with any, 2 for bad usage or an unreadable file.\n"},
    {"check-config",
     "usage: cefd check-config --config FILE\n"
     "Prints every problem `cefd run` would hit at start and can be seen without starting (keys,\n"
     "values, secret files, spool and dead-letter dirs writable, ports free, open-file limit).\n"
     "Exit 0 when there are none, else 2.\n"},
    {"parse",
     "usage: cefd parse [--config FILE] [FILE...]\n"
     "Prints one JSON object per input line (stdin when no FILE): the row cefd would send, or\n"
     "{\"error\":\"<reason>\"}. Only [parse] and [receive] are read from --config.\n"},
};

struct Options {
    std::string command;
    std::string config_path;
    std::vector<std::string> files;
    bool help = false;
    bool running = false;
    bool json = false;
    bool log_level_set = false;  // --log-level given: it wins over runtime.log_level at start
    std::uint32_t timeout_s = 60;
    bool ok = true;
};

Options parse_options(int argc, char** argv) {
    Options options;
    if (argc < 2) {
        options.ok = false;
        return options;
    }
    options.command = argv[1];
    for (int i = 2; i < argc; ++i) {
        const std::string arg = argv[i];
        if ((arg == "--config" || arg == "-c") && i + 1 < argc) {
            options.config_path = argv[++i];
        } else if (arg.rfind("--config=", 0) == 0) {
            options.config_path = arg.substr(9);
        } else if (arg == "--help" || arg == "-h") {
            options.help = true;
        } else if (arg == "--running" && options.command == "check") {
            options.running = true;
        } else if (arg == "--json" && options.command == "check") {
            options.json = true;
        } else if (arg == "--timeout" && options.command == "check" && i + 1 < argc) {
            const long seconds = std::strtol(argv[++i], nullptr, 10);
            if (seconds <= 0 || seconds > 3600) {
                std::fprintf(stderr, "cefd: --timeout must be between 1 and 3600 seconds\n");
                options.ok = false;
            }
            options.timeout_s = static_cast<std::uint32_t>(seconds);
        } else if (arg == "--log-level" && i + 1 < argc) {
            log::Level level = log::Level::info;
            if (log::parse_level(argv[++i], level)) {
                log::set_level(level);
                options.log_level_set = true;
            } else {
                std::fprintf(stderr, "cefd: unknown log level \"%s\"\n", argv[i]);
                options.ok = false;
            }
        } else if (!arg.empty() && arg[0] == '-' && arg != "-") {
            std::fprintf(stderr, "cefd: unknown option %s\n", arg.c_str());
            options.ok = false;
        } else {
            options.files.push_back(arg);
        }
    }
    return options;
}

/// Loads `path`, printing every problem to stderr. Its warnings go into `warnings` when given
/// (`run` logs them once its log level is set), else to stderr after the problems.
std::optional<Config> load_or_report(const std::string& path, ConfigScope scope = ConfigScope::all,
                                     std::vector<std::string>* warnings = nullptr) {
    ConfigErrors errors;
    auto config = load_config_file(path, errors, scope);
    if (!config) {
        std::fprintf(stderr, "cefd: %zu problem%s in %s:\n", errors.list().size(),
                     errors.list().size() == 1 ? "" : "s", path.c_str());
        for (const auto& problem : errors.list()) std::fprintf(stderr, "  %s\n", problem.c_str());
    }
    if (warnings != nullptr) {
        *warnings = errors.warnings();
    } else if (!errors.warnings().empty()) {
        std::fprintf(stderr, "cefd: %zu warning%s for %s:\n", errors.warnings().size(),
                     errors.warnings().size() == 1 ? "" : "s", path.c_str());
        for (const auto& warning : errors.warnings()) std::fprintf(stderr, "  warning: %s\n", warning.c_str());
    }
    return config;
}

int check_config(const Options& options) {
    if (options.config_path.empty()) {
        std::fputs(usage_text, stderr);
        return 2;
    }
    auto config = load_or_report(options.config_path);
    if (!config) return 2;
    // What `run` would hit at start: the file can be perfect and the machine not ready for it.
    ConfigErrors errors;
    check_startup(*config, errors);
    if (!errors.empty()) {
        std::fprintf(stderr, "cefd: %zu problem%s for %s on this machine:\n", errors.list().size(),
                     errors.list().size() == 1 ? "" : "s", options.config_path.c_str());
        for (const auto& problem : errors.list()) std::fprintf(stderr, "  %s\n", problem.c_str());
        return 2;
    }
    std::printf("%s: ok\n", options.config_path.c_str());
    return 0;
}

/// Reads lines from `in` and prints one JSON object per line. Uses the pipeline's own Parser
/// and row encoder, so this prints exactly what cefd would send.
void parse_stream(std::FILE* in, Parser& parser, Row& row, std::vector<char>& out) {
    char* line = nullptr;
    std::size_t capacity = 0;
    ssize_t length = 0;
    while ((length = ::getline(&line, &capacity, in)) >= 0) {
        std::size_t n = static_cast<std::size_t>(length);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) --n;
        MessageMeta meta;
        meta.receive_time_ns = wall_clock_ns();
        meta.length = static_cast<std::uint32_t>(n);
        const ParseResult result = parser.parse(std::string_view(line, n), meta, row);
        if (result.outcome == ParseOutcome::row) {
            out.resize(row_json_bound(row) + 1);
            char* end = write_row_json(row, out.data());
            *end++ = '\n';
            std::fwrite(out.data(), 1, static_cast<std::size_t>(end - out.data()), stdout);
        } else {
            std::printf("{\"error\":\"%.*s\"}\n", static_cast<int>(result.reason.size()), result.reason.data());
        }
    }
    std::free(line);
}

int parse_command(const Options& options) {
    ParseConfig parse_config;
    if (!options.config_path.empty()) {
        auto config = load_or_report(options.config_path, ConfigScope::parse);
        if (!config) return 2;
        parse_config = config->parse;
    }
    log::set_level(log::Level::error);  // counters' rate-limited warnings would mix with the output
    Parser parser(parse_config);
    Row row;
    std::vector<char> out;
    if (options.files.empty()) {
        parse_stream(stdin, parser, row, out);
        return 0;
    }
    int status = 0;
    for (const auto& path : options.files) {
        std::FILE* in = path == "-" ? stdin : std::fopen(path.c_str(), "r");
        if (in == nullptr) {
            std::fprintf(stderr, "cefd: cannot open %s: %s\n", path.c_str(), std::strerror(errno));
            status = 1;
            continue;
        }
        parse_stream(in, parser, row, out);
        if (in != stdin) std::fclose(in);
    }
    return status;
}

/// SIGHUP: re-reads the file and applies what may change while running; logs every problem,
/// every key left for a restart, and every key applied.
void reload(Pipeline& p, const std::string& path) {
    ConfigErrors errors;
    auto file = load_config_file(path, errors);
    if (!file) {
        p.reload_invalid();
        CEFD_LOG(error, "reload: %s has %zu problem%s; the running config stays:", path.c_str(), errors.list().size(),
                 errors.list().size() == 1 ? "" : "s");
        for (const auto& problem : errors.list()) CEFD_LOG(error, "reload: %s", problem.c_str());
        return;
    }
    for (const auto& warning : errors.warnings()) CEFD_LOG(warn, "reload: %s: %s", path.c_str(), warning.c_str());
    const Pipeline::ReloadReport report = p.reload_config(*file);
    for (const auto& key : report.needs_restart) CEFD_LOG(warn, "reload: needs restart: %s", key.c_str());
    if (!report.ok) {
        for (const auto& problem : report.problems)
            CEFD_LOG(error, "reload: cannot apply %s: %s; the running config stays", path.c_str(), problem.c_str());
        return;
    }
    for (const auto& key : report.applied) CEFD_LOG(info, "reload: applied %s", key.c_str());
    CEFD_LOG(info, "reload: %s reloaded: %zu change%s applied, %zu need%s a restart", path.c_str(), report.applied.size(),
             report.applied.size() == 1 ? "" : "s", report.needs_restart.size(), report.needs_restart.size() == 1 ? "s" : "");
}

/// "RELOADING=1" needs the time of the reload request on CLOCK_MONOTONIC (systemd 253+).
std::string reloading_state() {
    return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_ns() / 1'000) + "\nSTATUS=reloading the configuration";
}

int run(const Options& options) {
    if (options.config_path.empty()) {
        std::fputs(usage_text, stderr);
        return 2;
    }
    std::vector<std::string> warnings;
    auto config = load_or_report(options.config_path, ConfigScope::all, &warnings);
    if (!config) return 2;
    if (!options.log_level_set) log::set_level(config->runtime.log_level);
    for (const auto& warning : warnings) CEFD_LOG(warn, "config: %s", warning.c_str());

    // Every thread inherits this mask, so only sigtimedwait() below sees these signals.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    // Before any port is bound: enough descriptors for every connection and segment (at the
    // limit, the spool would mistake EMFILE for a full disk), and no second instance.
    auto limit = ensure_file_limit(*config, true);
    if (!limit) {
        CEFD_LOG(error, "cannot start: %s", limit.error().describe().c_str());
        return 2;
    }
    if (!limit.value().empty()) CEFD_LOG(warn, "%s", limit.value().c_str());
    auto lock = InstanceLock::acquire(*config);
    if (!lock) {
        CEFD_LOG(error, "cannot start: %s", lock.error().describe().c_str());
        return 2;
    }

    auto pipeline = Pipeline::build(*config);
    if (!pipeline) {
        CEFD_LOG(error, "cannot start: %s", pipeline.error().describe().c_str());
        return 2;
    }
    Pipeline& p = *pipeline.value();
    p.start();
    const auto& r = config->receive;
    auto where = [&r](std::uint16_t port) { return port == 0 ? std::string("off") : r.listen + ":" + std::to_string(port); };
    CEFD_LOG(info, "cefd %s running: %zu lanes, udp=%s tcp=%s tls=%s, metrics=%s, sending to %s", CEFD_VERSION,
             p.lane_count(), where(r.udp_port).c_str(), where(r.tcp_port).c_str(),
             where(r.tls_cert_file.empty() ? std::uint16_t{0} : r.tls_port).c_str(),
             config->metrics.listen.empty() ? "off" : config->metrics.listen.c_str(),
             config->azure.target.endpoint.c_str());
    // Every listener was bound in build(), and every thread runs.
    systemd::notify("READY=1\nSTATUS=running: " + std::to_string(p.lane_count()) + " lanes, udp=" + where(r.udp_port) +
                    " tcp=" + where(r.tcp_port));

    // One loop for the periodic summary (metrics.log_interval_s, reloadable) and the
    // watchdog (WATCHDOG_USEC / 2): it wakes for whichever is due first, or for a signal.
    const std::int64_t watchdog_ns = systemd::watchdog_interval_us() * 1'000 / 2;
    std::int64_t next_watchdog_ns = monotonic_ns();
    std::int64_t next_summary_ns = 0;  // set from the interval below
    std::uint32_t summary_interval_s = 0;
    for (;;) {
        const std::int64_t now = monotonic_ns();
        if (p.config().metrics.log_interval_s != summary_interval_s) {
            summary_interval_s = p.config().metrics.log_interval_s;
            next_summary_ns = now + static_cast<std::int64_t>(summary_interval_s) * 1'000'000'000;
        }
        if (summary_interval_s > 0 && now >= next_summary_ns) {
            const std::string summary = p.summary();
            CEFD_LOG(info, "%s", summary.c_str());
            systemd::notify("STATUS=" + summary);
            next_summary_ns = now + static_cast<std::int64_t>(summary_interval_s) * 1'000'000'000;
        }
        if (watchdog_ns > 0 && now >= next_watchdog_ns) {
            systemd::notify("WATCHDOG=1");
            next_watchdog_ns = now + watchdog_ns;
        }
        std::int64_t wait_ns = 3'600'000'000'000;
        if (summary_interval_s > 0) wait_ns = std::min(wait_ns, next_summary_ns - now);
        if (watchdog_ns > 0) wait_ns = std::min(wait_ns, next_watchdog_ns - now);
        wait_ns = std::max<std::int64_t>(wait_ns, 1'000'000);
        const timespec timeout{wait_ns / 1'000'000'000, wait_ns % 1'000'000'000};
        const int sig = sigtimedwait(&signals, nullptr, &timeout);
        if (sig == SIGTERM || sig == SIGINT) {
            CEFD_LOG(info, "%s received: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        }
        if (sig == SIGHUP) {
            systemd::notify(reloading_state());
            CEFD_LOG(info, "SIGHUP received: reloading %s", options.config_path.c_str());
            reload(p, options.config_path);
            // The TLS listener's files are re-read at their same paths in any case.
            if (!r.tls_cert_file.empty()) {
                CEFD_LOG(info, "reload: re-reading the TLS certificate %s, key %s%s%s", r.tls_cert_file.c_str(),
                         r.tls_key_file.c_str(), r.tls_client_ca_file.empty() ? "" : " and client CA ",
                         r.tls_client_ca_file.c_str());
            }
            p.reload();
            systemd::notify("READY=1\nSTATUS=" + p.summary());
        }
    }
    systemd::notify("STOPPING=1\nSTATUS=draining");
    // The drain is bounded (the sender stops at azure.drain_timeout_ms), but a stuck disk or a
    // lane blocked on a full spool must not keep a service manager waiting for ever. Sealed
    // batches are already in the spool, so leaving now loses nothing the spool accepted.
    std::thread([timeout_ms = config->runtime.shutdown_timeout_ms] {
        std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
        CEFD_LOG(error, "shutdown took longer than runtime.shutdown_timeout_ms (%u ms): exiting now; "
                        "what the spool holds is delivered at the next start", timeout_ms);
        std::_Exit(1);
    }).detach();
    p.stop();
    CEFD_LOG(info, "final: %s", p.summary().c_str());
    return 0;
}

}  // namespace
}  // namespace cefd

int main(int argc, char** argv) {
    using namespace cefd;
    // Parses its own arguments (engine/pipeline/replay_dead_letter.h).
    if (argc > 1 && std::string(argv[1]) == "replay-dead-letter") return replay_dead_letter_main(argc - 1, argv + 1);
    // The row linter: the same function as cefd-check, with its arguments.
    if (argc > 2 && std::string(argv[1]) == "check" && std::string(argv[2]) == "rows")
        return rows_lint(std::vector<std::string>(argv + 3, argv + argc), "cefd check rows");
    const Options options = parse_options(argc, argv);
    if (options.command == "--version" || options.command == "version") {
        const curl_version_info_data* curl = curl_version_info(CURLVERSION_NOW);
        std::printf("cefd %s (commit %s)\n", CEFD_VERSION, CEFD_GIT_COMMIT);
        std::printf("liburing %s, %s, curl %s, libdeflate %s", CEFD_LIBURING_VERSION, OpenSSL_version(OPENSSL_VERSION),
                    curl->version, LIBDEFLATE_VERSION_STRING);
#if CEFD_HAVE_ISAL
        std::printf(", isa-l igzip %d.%d.%d", ISAL_MAJOR_VERSION, ISAL_MINOR_VERSION, ISAL_PATCH_VERSION);
#else
        std::printf(", isa-l igzip not built in");
#endif
        std::printf("\n");
        return 0;
    }
    if (options.command == "--help" || options.command == "-h" || options.command == "help") {
        std::fputs(usage_text, stdout);
        return 0;
    }
    if (options.help) {
        for (const CommandHelp& help : command_help) {
            if (options.command == help.name) {
                std::fputs(help.text, stdout);
                return 0;
            }
        }
    }
    if (!options.ok) {
        std::fputs(usage_text, stderr);
        return 2;
    }
    try {
        if (options.command == "run") return run(options);
        if (options.command == "check-config") return check_config(options);
        if (options.command == "parse") return parse_command(options);
        if (options.command == "check") {
            if (options.config_path.empty()) {
                std::fputs(usage_text, stderr);
                return 2;
            }
            log::set_level(log::Level::error);  // the pipeline's log lines would mix with the steps
            ::signal(SIGPIPE, SIG_IGN);
            return check_command(CheckOptions{.config_path = options.config_path,
                                              .running = options.running,
                                              .json = options.json,
                                              .timeout_s = options.timeout_s});
        }
    } catch (const std::exception& error) {
        CEFD_LOG(error, "fatal: %s", error.what());
        return 1;
    }
    std::fputs(usage_text, stderr);
    return 2;
}
