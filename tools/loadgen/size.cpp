// tools/loadgen/size.cpp: `cefd-loadgen size` (size.h): parse the flags, find or start cefd,
// run the search once per lane count, and write the report. The parts live beside it:
// size_options (flags), size_probe (/metrics and /proc), size_trial (trials and the search),
// size_verdict (the recommendation arithmetic), size_report (md/json/svg), size_cefd (per-core
// scaling).
#include "tools/loadgen/size.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "tools/loadgen/payload.h"
#include "tools/loadgen/size_cefd.h"
#include "tools/loadgen/size_options.h"
#include "tools/loadgen/size_probe.h"
#include "tools/loadgen/size_report.h"
#include "tools/loadgen/size_trial.h"
#include "tools/loadgen/size_verdict.h"

namespace cefd::loadgen {
namespace {

struct LaneResult {
    unsigned lanes = 0;
    double max_zero_loss_eps = 0;
    double cpu_us_per_event = 0;
    double p99_ms = 0;
};

}  // namespace

int run_size(int argc, char** argv) {
    using namespace sizing;
    SizeOptions options;
    std::string error;
    if (!parse_size_options(argc, argv, options, error)) {
        if (error == "help") {
            std::fputs(size_usage, stdout);
            return 0;
        }
        std::fprintf(stderr, "cefd-loadgen size: %s\n%s", error.c_str(), size_usage);
        return 2;
    }
    std::vector<std::string> lines = payload_lines(options.load, error);
    if (lines.empty()) {
        std::fprintf(stderr, "cefd-loadgen size: %s\n", error.c_str());
        return 2;
    }
    double bytes_per_event = 0;
    for (const std::string& line : lines) bytes_per_event += static_cast<double>(line.size());
    bytes_per_event /= static_cast<double>(lines.size());
    if (::mkdir(options.out_dir.c_str(), 0755) != 0 && errno != EEXIST) {
        std::fprintf(stderr, "cefd-loadgen size: cannot create --out %s: %s\n", options.out_dir.c_str(), std::strerror(errno));
        return 2;
    }

    std::vector<Trial> trials;
    std::vector<LaneResult> scaling;
    double lanes_seen = 0;
    if (options.cefd_binary.empty()) {
        const Scrape first = scrape(options.metrics_url);
        if (!first.ok) {
            std::fprintf(stderr, "cefd-loadgen size: no cefd_send_delivered_rows_total at %s\n", options.metrics_url.c_str());
            return 1;
        }
        lanes_seen = first.lanes;
        const bool tcp = options.load.proto != LoadgenOptions::Proto::udp;
        const int pid = options.pid != 0 ? options.pid : find_listener_pid(options.load.port, tcp);
        if (pid == 0 || process_cpu_s(pid) < 0) {
            std::fprintf(stderr, "cefd-loadgen size: no process listens on port %u (give --pid)\n", options.load.port);
            return 1;
        }
        trials = search(options, lines, pid);
    } else {
        // Per-core scaling: one search per lane count; the report's verdict is the last one's.
        error.clear();
        for (const unsigned lanes : options.lanes) {
            CefdChild cefd(options, lanes, error);
            if (!error.empty()) {
                std::fprintf(stderr, "cefd-loadgen size: %s\n", error.c_str());
                return 1;
            }
            std::fprintf(stderr, "cefd-loadgen size: cefd with %u lane(s), pid %d\n", lanes, cefd.pid());
            trials = search(options, lines, cefd.pid());
            lanes_seen = scrape(options.metrics_url).lanes;
            const Verdict one = decide(options, trials);
            if (one.target_unreachable) break;  // these trials go into the report: no verdict
            scaling.push_back({.lanes = lanes, .max_zero_loss_eps = one.max_zero_loss_eps,
                               .cpu_us_per_event = one.cpu_us_per_event, .p99_ms = one.p99_ms});
        }
    }
    const Verdict verdict = decide(options, trials);
    std::string json = report_json(options, trials, verdict, bytes_per_event, lanes_seen);
    std::string scaling_md;
    if (!scaling.empty()) {
        // Scaling factor: each lane count's verdict over the first one's.
        std::string entries;
        scaling_md = "## Per-core scaling\n\ncefd restarted with `runtime.workers` = k; the verdict above is the last "
                     "row's.\n\n| lanes | max zero-loss events/s | scaling vs first | cefd CPU-µs/event | p99 ms |\n"
                     "|---|---|---|---|---|\n";
        for (const LaneResult& row : scaling) {
            const double factor = scaling.front().max_zero_loss_eps > 0
                                      ? row.max_zero_loss_eps / scaling.front().max_zero_loss_eps
                                      : 0;
            entries += std::string(entries.empty() ? "" : ",") + "{\"lanes\":" + std::to_string(row.lanes) +
                       ",\"max_zero_loss_eps\":" + fixed(row.max_zero_loss_eps, 0) + ",\"scaling\":" +
                       fixed(factor, 2) + ",\"cpu_us_per_event\":" + fixed(row.cpu_us_per_event, 3) +
                       ",\"p99_ms\":" + fixed(row.p99_ms, 2) + "}";
            scaling_md += "| " + std::to_string(row.lanes) + " | " + fixed(row.max_zero_loss_eps, 0) + " | " +
                          fixed(factor, 2) + "x | " + fixed(row.cpu_us_per_event, 2) + " | " + fixed(row.p99_ms, 1) +
                          " |\n";
        }
        scaling_md += "\n";
        json.insert(json.size() - 2, ",\"scaling\":[" + entries + "]");  // before the final "}\n"
    }

    const bool written = write_text(options.out_dir + "/report.json", json) &&
                         write_text(options.out_dir + "/report.md",
                                    report_markdown(options, trials, verdict, bytes_per_event, lanes_seen, scaling_md)) &&
                         write_text(options.out_dir + "/sizing.svg", sizing_svg(trials, verdict, options.max_p99_ms));
    if (!written) {
        std::fprintf(stderr, "cefd-loadgen size: cannot write the report into %s\n", options.out_dir.c_str());
        return 1;
    }
    if (verdict.target_unreachable)
        std::fprintf(stderr,
                     "cefd-loadgen size: no verdict: cefd stopped answering during the search (see %s/report.md)\n",
                     options.out_dir.c_str());
    if (verdict.generator_limited) {
        std::fprintf(stderr,
                     "cefd-loadgen size: the generator, not cefd, was the limit at %.0f ev/s (%s): run the generator "
                     "on another machine or add --senders\n",
                     verdict.generator_limited_eps, verdict.why.c_str());
    }
    std::printf("{\"max_zero_loss_eps\":%.0f,\"generator_limited\":%s,\"cpu_us_per_event\":%.3f,\"p99_ms\":%.2f,"
                "\"collectors_needed\":%d,\"dcrs_needed\":%d,\"report\":\"%s/report.md\"}\n",
                verdict.max_zero_loss_eps, verdict.generator_limited ? "true" : "false", verdict.cpu_us_per_event,
                verdict.p99_ms, verdict.collectors_needed,
                verdict.dcrs_needed, options.out_dir.c_str());
    return verdict.reached ? 0 : 1;
}

}  // namespace cefd::loadgen
