// cefd-azure-standin: flags, signals, and the ready file. The server is in standin.cpp and the
// *_routes.cpp files; the command line is a contract (README.md), relied on by the e2e tests,
// bench and users' scripts.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

#include "engine/log.h"
#include "tools/azure_standin/standin.h"

namespace {

constexpr const char* usage =
    "usage: cefd-azure-standin --out FILE [options]\n"
    "  --listen ADDR            address (default 127.0.0.1; ::1 for IPv6)\n"
    "  --port N                 port (default 0 = ephemeral)\n"
    "  --tls                    HTTPS with a generated self-signed certificate\n"
    "  --cert-dir DIR           where standin-ca.pem is written (default: directory of --out)\n"
    "  --out FILE               accepted rows, one compact JSON object per line (appended)\n"
    "  --ready-file FILE        written once listening: the base URL and a newline\n"
    "  --tenant-id T --client-id C --client-secret S\n"
    "  --dcr-id ID              repeatable (default dcr-00000000000000000000000000000000)\n"
    "  --stream NAME            repeatable (default Custom-CommonSecurityLog, Custom-Syslog)\n"
    "  --forbid-dcr ID          repeatable: that DCR answers 403 OperationFailed\n"
    "  --audience URL           monitor resource (default https://monitor.azure.com; scope URL/.default)\n"
    "  --client-cert FILE       PEM: client assertions must be signed by its key\n"
    "  --arc-key-dir DIR        serve the Arc identity endpoint; challenge key files go here\n"
    "  --token-lifetime-s N     (default 3600)\n"
    "  --max-body-bytes N       wire Content-Length limit (default 1048576)\n"
    "  --max-json-bytes N       decompressed limit (default 1048576)\n"
    "  --fault-429-every N  --retry-after-s S  --fault-500-every N\n"
    "  --fault-drop-every N  --fault-drop-before-every N  --outage-s T\n"
    "  --threads N              HTTP worker threads (default 8)\n"
    "  --accept-log FILE        one line \"<rows> <unix ns>\" per accepted request (latency)\n"
    "  --bench                  benchmark mode: full checks on 1 request in 64, the rest are\n"
    "                           decompressed and split into rows only\n"
    "  --bench-check-every N    benchmark mode with full checks on 1 request in N\n"
    "  --log-level error|warn|info|debug\n";

bool parse_number(std::string_view text, std::uint64_t& out) {
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
    return !text.empty() && error == std::errc{} && end == text.data() + text.size();
}

int bad_usage(const std::string& message) {
    std::fprintf(stderr, "cefd-azure-standin: %s\n%s", message.c_str(), usage);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    using cefd::standin::StandinOptions;
    StandinOptions options;
    for (int i = 1; i < argc; ++i) {
        const std::string_view flag = argv[i];
        if (flag == "--help" || flag == "-h") {
            std::fputs(usage, stdout);
            return 0;
        }
        if (flag == "--tls") {
            options.tls = true;
            continue;
        }
        if (flag == "--bench") {
            if (options.bench_check_every == 0) options.bench_check_every = 64;
            continue;
        }
        if (i + 1 >= argc) return bad_usage("missing value for " + std::string(flag));
        const std::string value = argv[++i];
        std::uint64_t number = 0;
        const auto numeric = [&](std::uint64_t& field) {
            if (!parse_number(value, number)) return false;
            field = number;
            return true;
        };
        bool ok = true;
        if (flag == "--listen") options.listen_address = value;
        else if (flag == "--port") {
            ok = parse_number(value, number) && number <= 65535;
            options.port = static_cast<int>(number);
        }
        else if (flag == "--cert-dir") options.cert_dir = value;
        else if (flag == "--out") options.out_path = value;
        else if (flag == "--ready-file") options.ready_file = value;
        else if (flag == "--tenant-id") options.tenant_id = value;
        else if (flag == "--client-id") options.client_id = value;
        else if (flag == "--client-secret") options.client_secret = value;
        else if (flag == "--dcr-id") options.dcr_ids.push_back(value);
        else if (flag == "--stream") options.streams.push_back(value);
        else if (flag == "--forbid-dcr") options.forbidden_dcrs.push_back(value);
        else if (flag == "--audience") options.audience = value;
        else if (flag == "--client-cert") options.client_cert_file = value;
        else if (flag == "--arc-key-dir") options.arc_key_dir = value;
        else if (flag == "--accept-log") options.accept_log_path = value;
        else if (flag == "--bench-check-every") ok = numeric(options.bench_check_every) && number >= 1;
        else if (flag == "--threads") {
            ok = parse_number(value, number) && number >= 1 && number <= 256;
            options.threads = static_cast<std::uint32_t>(number);
        }
        else if (flag == "--token-lifetime-s") ok = numeric(options.knobs.token_lifetime_s);
        else if (flag == "--max-body-bytes") ok = numeric(options.knobs.max_body_bytes);
        else if (flag == "--max-json-bytes") ok = numeric(options.knobs.max_json_bytes);
        else if (flag == "--fault-429-every") ok = numeric(options.knobs.fault_429_every);
        else if (flag == "--retry-after-s") ok = numeric(options.knobs.retry_after_s);
        else if (flag == "--fault-500-every") ok = numeric(options.knobs.fault_500_every);
        else if (flag == "--fault-drop-every") ok = numeric(options.knobs.fault_drop_every);
        else if (flag == "--fault-drop-before-every") ok = numeric(options.knobs.fault_drop_before_every);
        else if (flag == "--outage-s") ok = numeric(options.knobs.outage_s);
        else if (flag == "--log-level") {
            cefd::log::Level level{};
            ok = cefd::log::parse_level(value.c_str(), level);
            if (ok) cefd::log::set_level(level);
        } else {
            return bad_usage("unknown flag " + std::string(flag));
        }
        if (!ok) return bad_usage("bad value '" + value + "' for " + std::string(flag));
    }
    if (options.out_path.empty()) return bad_usage("--out is required");
    const std::string ready_file = options.ready_file;

    // Block the stop signals before any thread starts, so only the signal thread sees them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up mid-response is not fatal

    auto created = cefd::standin::Standin::create(std::move(options));
    if (!created.ok()) {
        std::fprintf(stderr, "cefd-azure-standin: %s\n", created.error().describe().c_str());
        return 2;
    }
    auto& standin = *created.value();

    // The port is bound and listening (connections queue in the backlog), so the URL can be
    // published before the accept loop starts.
    const std::string line = standin.base_url() + "\n";
    if (!ready_file.empty()) {
        const std::string temporary = ready_file + ".tmp";
        std::FILE* file = std::fopen(temporary.c_str(), "w");
        const bool written = file != nullptr && std::fputs(line.c_str(), file) >= 0;
        if (file != nullptr) std::fclose(file);
        if (!written || std::rename(temporary.c_str(), ready_file.c_str()) != 0) {
            std::fprintf(stderr, "cefd-azure-standin: cannot write --ready-file %s\n", ready_file.c_str());
            return 2;
        }
    }
    std::printf("listening %s", line.c_str());
    std::fflush(stdout);

    std::thread signal_thread([&standin, stop_signals] {
        int signal_number = 0;
        sigwait(&stop_signals, &signal_number);
        standin.stop();
    });
    const bool served = standin.run();
    // run() also returns if the listener failed; wake the signal thread so it can be joined.
    if (!served) standin.stop();
    pthread_kill(signal_thread.native_handle(), SIGTERM);
    signal_thread.join();
    return served ? 0 : 1;
}
