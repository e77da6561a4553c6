// cefd-loadgen: sends syslog/CEF events over UDP or TCP and, with --verify, checks which of
// them reached the Azure stand-in. Prints one JSON line on stdout; see README.md.
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "loadgen_samples.h"
#include "tools/loadgen/options.h"
#include "tools/loadgen/sender.h"
#include "tools/loadgen/verify.h"

namespace {

constexpr std::size_t line_bytes_max = 65'000;

/// Non-empty lines that do not start with '#', trailing whitespace (and CR) removed.
std::vector<std::string> split_lines(std::string_view text) {
    std::vector<std::string> lines;
    while (!text.empty()) {
        const std::size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
            line.remove_suffix(1);
        }
        if (line.empty() || line.front() == '#') continue;
        lines.emplace_back(line);
    }
    return lines;
}

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
    if (!options.verify_only) {
        std::vector<std::string> lines;
        if (options.file.empty()) {
            lines = split_lines(std::string_view(loadgen_samples, loadgen_samples_size));
        } else {
            std::ifstream in(options.file, std::ios::binary);
            if (!in) {
                std::fprintf(stderr, "cefd-loadgen: cannot read --file %s\n", options.file.c_str());
                return 2;
            }
            const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            lines = split_lines(text);
        }
        if (lines.empty()) {
            std::fprintf(stderr, "cefd-loadgen: no lines to send\n");
            return 2;
        }
        for (const std::string& line : lines) {
            if (line.size() > line_bytes_max) {
                std::fprintf(stderr, "cefd-loadgen: a line of %zu bytes is longer than %zu\n", line.size(),
                             line_bytes_max);
                return 2;
            }
        }

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

    const char* proto = options.proto == LoadgenOptions::Proto::udp ? "udp" : "tcp";
    const double rate = sent.elapsed_s > 0 ? static_cast<double>(sent.sent) / sent.elapsed_s : 0;
    std::string line = "{\"run_id\":" + json_string(options.run_id) + ",\"proto\":\"" + proto +
                       "\",\"sent\":" + std::to_string(sent.sent);
    char numbers[96];
    std::snprintf(numbers, sizeof numbers, ",\"elapsed_s\":%.3f,\"rate_eps\":%.0f", sent.elapsed_s, rate);
    line += numbers;
    int exit_code = sent.error.empty() || sent.attempted > 0 ? 0 : 1;
    if (!options.verify_path.empty()) {
        const VerifyReport verified = verify_delivery(options.verify_path, options.run_id, sent.attempted, options.wait_s);
        line += ",\"delivered\":" + std::to_string(verified.delivered) + ",\"lost\":" + std::to_string(verified.lost) +
                ",\"duplicated\":" + std::to_string(verified.duplicated);
        if (verified.lost > 0) exit_code = 1;
    }
    line += ",\"send_errors\":" + std::to_string(sent.send_errors) + "}\n";
    std::fputs(line.c_str(), stdout);
    return exit_code;
}
