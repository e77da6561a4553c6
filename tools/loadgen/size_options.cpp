// tools/loadgen/size_options.cpp: parsing `cefd-loadgen size`'s flags (size_options.h).
#include "tools/loadgen/size_options.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <thread>

namespace cefd::loadgen::sizing {

const char* const size_usage =
    "usage: cefd-loadgen size --target HOST:PORT [--proto udp|tcp|tls] --metrics URL --verify ROWS.jsonl\n"
    "                         --out DIR [--peak-eps P] [--headroom F] [--hold-s S] [--max-p99-ms MS]\n"
    "                         [--max-rate R] [--file F]\n"
    "  --metrics URL        cefd's Prometheus endpoint, http://127.0.0.1:9514/metrics\n"
    "  --verify ROWS.jsonl  the stand-in's --out (its --accept-log: ROWS.jsonl.accept or --accept-log)\n"
    "  --out DIR            report.md, report.json, sizing.svg\n"
    "  --peak-eps P         your peak events/s: recommends collectors and DCRs\n"
    "  --headroom F         fraction of each collector kept free (default 0.3)\n"
    "  --hold-s S           a rate holds if it holds this long (default 30)\n"
    "  --max-p99-ms MS      latency bound, send to acceptance (default 5000)\n"
    "  --max-rate R         highest rate tried (default 1000000)\n"
    "  --file F             lines to send (default: --payload 853b)\n"
    "  also: --payload samples|853b|templates --seed N --start-rate R (default 1000)\n"
    "        --senders N --flows N --framing newline|octet --cacert F --accept-log F\n"
    "        --pid N (default: the process listening on the target port) --bisect-steps N (default 4)\n"
    "        --drain-s S (after a trial, wait at most this long for the last rows; default 2 x\n"
    "        max-p99 + 5)\n"
    "exit: 0 verdict reached, 1 no verdict (cefd or metrics unreachable), 2 bad usage\n";

namespace {

bool parse_double(const std::string& text, double& out, double low, double high) {
    char* end = nullptr;
    out = std::strtod(text.c_str(), &end);
    return !text.empty() && end == text.c_str() + text.size() && out >= low && out <= high;
}


}  // namespace

/// Splits size's own flags from the loadgen flags it passes through to parse_options.
bool parse_size_options(int argc, char** argv, SizeOptions& options, std::string& error) {
    std::vector<std::string> passed{"cefd-loadgen"};
    bool have_target = false;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "--help" || flag == "-h") {
            error = "help";
            return false;
        }
        if (i + 1 >= argc) {
            error = "missing value for " + flag;
            return false;
        }
        const std::string value = argv[++i];
        bool ok = true;
        if (flag == "--metrics") options.metrics_url = value;
        else if (flag == "--out") options.out_dir = value;
        else if (flag == "--peak-eps") ok = parse_double(value, options.peak_eps, 1, 1e12);
        else if (flag == "--headroom") ok = parse_double(value, options.headroom, 0, 0.95);
        else if (flag == "--hold-s") ok = parse_double(value, options.hold_s, 0.5, 86'400);
        else if (flag == "--max-p99-ms") ok = parse_double(value, options.max_p99_ms, 1, 3.6e6);
        else if (flag == "--max-rate") ok = parse_double(value, options.max_rate, 1, 1e9);
        else if (flag == "--start-rate") ok = parse_double(value, options.start_rate, 1, 1e9);
        else if (flag == "--drain-s") ok = parse_double(value, options.drain_s, 0.5, 86'400);
        else if (flag == "--pid") {
            double pid = 0;
            ok = parse_double(value, pid, 1, 4'194'304);
            options.pid = static_cast<int>(pid);
        } else if (flag == "--bisect-steps") {
            double steps = 0;
            ok = parse_double(value, steps, 0, 20);
            options.bisect_steps = static_cast<int>(steps);
        } else if (flag == "--cefd") {
            options.cefd_binary = value;
        } else if (flag == "--config") {
            options.cefd_config = value;
        } else if (flag == "--lanes") {
            // "1,2,4"
            std::size_t start = 0;
            while (ok && start <= value.size()) {
                const std::size_t comma = std::min(value.find(',', start), value.size());
                double lanes = 0;
                ok = parse_double(value.substr(start, comma - start), lanes, 1, 256) && lanes == std::floor(lanes);
                if (ok) options.lanes.push_back(static_cast<unsigned>(lanes));
                start = comma + 1;
            }
        } else if (flag == "--target" || flag == "--proto" || flag == "--file" || flag == "--payload" ||
                   flag == "--seed" || flag == "--senders" || flag == "--flows" || flag == "--framing" ||
                   flag == "--cacert" || flag == "--accept-log" || flag == "--verify") {
            have_target = have_target || flag == "--target";
            passed.push_back(flag);
            passed.push_back(value);
        } else {
            error = "unknown flag " + flag;
            return false;
        }
        if (!ok) {
            error = "bad value '" + value + "' for " + flag;
            return false;
        }
    }
    std::vector<char*> pointers;
    for (std::string& text : passed) pointers.push_back(text.data());
    bool help = false;
    if (!parse_options(static_cast<int>(pointers.size()), pointers.data(), options.load, error, help)) return false;
    if (!have_target || options.metrics_url.empty() || options.load.verify_path.empty() || options.out_dir.empty()) {
        error = "size needs --target, --metrics, --verify and --out";
        return false;
    }
    if (options.cefd_binary.empty() != options.cefd_config.empty()) {
        error = "--cefd and --config go together";
        return false;
    }
    if (!options.cefd_binary.empty() && options.lanes.empty()) {
        for (unsigned k = 1; k <= std::max(1U, std::thread::hardware_concurrency()); ++k) options.lanes.push_back(k);
    }
    if (options.cefd_binary.empty() && !options.lanes.empty()) {
        error = "--lanes needs --cefd BIN --config FILE";
        return false;
    }
    if (options.metrics_url.rfind("http://", 0) != 0) {
        error = "--metrics must be an http:// URL";
        return false;
    }
    if (options.start_rate > options.max_rate) options.start_rate = options.max_rate;
    if (options.drain_s == 0) options.drain_s = 2 * options.max_p99_ms / 1000 + 5;
    // 853-byte model breaches unless told otherwise: the size real fleets send.
    bool payload_given = false;
    for (const std::string& text : passed) payload_given = payload_given || text == "--payload" || text == "--file";
    if (!payload_given) options.load.payload = LoadgenOptions::Payload::breach_853b;
    // Many UDP source ports by default, so SO_REUSEPORT spreads them over every lane.
    bool flows_given = false;
    for (const std::string& text : passed) flows_given = flows_given || text == "--flows";
    if (!flows_given) {
        options.load.flows = std::max<std::uint32_t>(
            options.load.senders, options.load.proto == LoadgenOptions::Proto::udp ? 16 : 4);
    }
    options.load.stamp = true;
    options.load.stamp_time = true;
    return true;
}

}  // namespace cefd::loadgen::sizing
