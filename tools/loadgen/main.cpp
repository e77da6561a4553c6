// cefd-loadgen: sends syslog/CEF events over UDP or TCP and, with --verify, checks which of
// them reached the Azure stand-in. Prints one JSON line on stdout; see README.md.
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tools/loadgen/options.h"
#include "tools/loadgen/sender.h"
#include "tools/loadgen/replay.h"
#include "tools/loadgen/size.h"
#include "tools/loadgen/payload.h"
#include "tools/loadgen/verify.h"

namespace {

std::string json_string(const std::string& text) {
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
    using namespace cefd::loadgen;
    if (argc >= 2 && std::strcmp(argv[1], "size") == 0) return run_size(argc - 1, argv + 1);
    if (argc >= 2 && std::strcmp(argv[1], "replay") == 0) return run_replay(argc - 1, argv + 1);
    LoadgenOptions options;
    std::string error;
    bool help = false;
    if (!parse_options(argc, argv, options, error, help)) {
        if (help) {
            std::fputs(usage_text, stdout);
            return 0;
        }
        std::fprintf(stderr, "cefd-loadgen: %s\n%s", error.c_str(), usage_text);
        return 2;
    }

    SendReport sent;
    double bytes_per_line = 0;
    if (!options.verify_only) {
        const std::vector<std::string> lines = payload_lines(options, error);
        if (lines.empty()) {
            std::fprintf(stderr, "cefd-loadgen: %s\n", error.c_str());
            return 2;
        }
        for (const std::string& line : lines) bytes_per_line += static_cast<double>(line.size());
        bytes_per_line /= static_cast<double>(lines.size());

        std::atomic<std::uint64_t> progress{0};
        std::atomic<bool> done{false};
        std::jthread reporter;
        if (options.report_interval_s > 0) {
            reporter = std::jthread([&] {
                const auto interval = std::chrono::duration<double>(options.report_interval_s);
                auto next = std::chrono::steady_clock::now() + interval;
                std::uint64_t last = 0;
                while (!done.load()) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(50));
                    const auto now = std::chrono::steady_clock::now();
                    if (now < next) continue;
                    const std::uint64_t total = progress.load();
                    std::fprintf(stderr, "cefd-loadgen: sent=%llu rate_eps=%.0f\n",
                                 static_cast<unsigned long long>(total),
                                 static_cast<double>(total - last) / options.report_interval_s);
                    last = total;
                    next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval);
                }
            });
        }
        sent = send_events(options, lines, progress);
        done = true;
        if (!sent.error.empty()) std::fprintf(stderr, "cefd-loadgen: %s\n", sent.error.c_str());
    } else {
        sent.attempted = options.count;
        sent.sent = options.count;
    }

    const char* proto = options.proto == LoadgenOptions::Proto::udp   ? "udp"
                        : options.proto == LoadgenOptions::Proto::tcp ? "tcp"
                                                                      : "tls";
    const double rate = sent.elapsed_s > 0 ? static_cast<double>(sent.sent) / sent.elapsed_s : 0;
    std::string line = "{\"run_id\":" + json_string(options.run_id) + ",\"proto\":\"" + proto +
                       "\",\"sent\":" + std::to_string(sent.sent);
    char numbers[256];
    std::snprintf(numbers, sizeof numbers, ",\"elapsed_s\":%.3f,\"rate_eps\":%.0f", sent.elapsed_s, rate);
    line += numbers;
    if (!options.verify_only) {
        // The generator's own cost: if it nears 1e6 / rate per sender, the generator is the limit.
        std::snprintf(numbers, sizeof numbers, ",\"bytes_per_event\":%.0f,\"loadgen_cpu_us_per_event\":%.3f",
                      bytes_per_line, sent.sent > 0 ? sent.cpu_s * 1e6 / static_cast<double>(sent.sent) : 0.0);
        line += numbers;
        // Whether the generator, not the target, set this rate (sender.h): then take no verdict from it.
        const GeneratorCheck check = check_generator(sent);
        if (check.requested_eps > 0) {
            std::snprintf(numbers, sizeof numbers, ",\"requested_eps\":%.0f", check.requested_eps);
            line += numbers;
        }
        std::snprintf(numbers, sizeof numbers, ",\"sender_cpu_share\":%.3f,\"sender_runnable_share\":%.3f",
                      check.sender_cpu_share, check.sender_runnable_share);
        line += numbers;
        line += std::string(",\"generator_limited\":") + (check.limited ? "true" : "false");
        if (check.limited) line += ",\"generator_limited_why\":" + json_string(check.why);
        if (check.target_backpressure) line += ",\"target_backpressure\":true";
    }
    int exit_code = sent.error.empty() || sent.attempted > 0 ? 0 : 1;
    if (!options.verify_path.empty()) {
        std::string accept_log = options.accept_log_path;
        struct stat info {};
        if (accept_log.empty() && ::stat((options.verify_path + ".accept").c_str(), &info) == 0) {
            accept_log = options.verify_path + ".accept";
        }
        const VerifyReport verified =
            verify_delivery(options.verify_path, options.run_id, sent.attempted, options.wait_s, accept_log);
        line += ",\"delivered\":" + std::to_string(verified.delivered) + ",\"lost\":" + std::to_string(verified.lost) +
                ",\"duplicated\":" + std::to_string(verified.duplicated);
        if (verified.latency_samples > 0) {
            std::snprintf(numbers, sizeof numbers,
                          ",\"latency_samples\":%llu,\"latency_p50_ms\":%.3f,\"latency_p99_ms\":%.3f,"
                          "\"latency_max_ms\":%.3f",
                          static_cast<unsigned long long>(verified.latency_samples), verified.latency_p50_ms,
                          verified.latency_p99_ms, verified.latency_max_ms);
            line += numbers;
        }
        if (verified.latency_mismatched > 0) {
            line += ",\"latency_mismatched\":" + std::to_string(verified.latency_mismatched);
            std::fprintf(stderr,
                         "cefd-loadgen: %llu rows were accepted before they were sent: the accept log does not belong "
                         "to the rows file (restart the stand-in with both files new); their latency is left out\n",
                         static_cast<unsigned long long>(verified.latency_mismatched));
        }
        if (verified.lost > 0) exit_code = 1;
    }
    line += ",\"send_errors\":" + std::to_string(sent.send_errors) + "}\n";
    std::fputs(line.c_str(), stdout);
    return exit_code;
}
