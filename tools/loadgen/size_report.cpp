// tools/loadgen/size_report.cpp: report.json, report.md and sizing.svg (size_report.h).
#include "tools/loadgen/size_report.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <thread>

namespace cefd::loadgen::sizing {

std::string fixed(double value, int decimals) {
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", decimals, value);
    return text;
}

namespace {

/// `text` as a JSON string literal.
std::string json_text(const std::string& text) {
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            out += ' ';
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string trial_json(const Trial& t) {
    return "{\"phase\":\"" + t.phase + "\",\"target_eps\":" + fixed(t.target_eps, 0) + ",\"hold_s\":" +
           fixed(t.hold_s, 1) + ",\"sent\":" + std::to_string(t.sent) + ",\"offered_eps\":" + fixed(t.offered_eps, 0) +
           ",\"delivered\":" + std::to_string(t.delivered) + ",\"delivered_eps\":" + fixed(t.delivered_eps, 0) +
           ",\"lost\":" + std::to_string(t.lost) + ",\"duplicated\":" + std::to_string(t.duplicated) +
           ",\"loss_pct\":" + fixed(t.loss_pct, 3) + ",\"p50_ms\":" + fixed(t.p50_ms, 2) + ",\"p99_ms\":" +
           fixed(t.p99_ms, 2) + ",\"max_ms\":" + fixed(t.max_ms, 2) + ",\"cefd_cpu_us_per_event\":" +
           fixed(t.cefd_cpu_us_per_event, 3) + ",\"loadgen_cpu_us_per_event\":" + fixed(t.loadgen_cpu_us_per_event, 3) +
           ",\"backlog_start\":" + fixed(t.backlog_start, 1) + ",\"backlog_end\":" + fixed(t.backlog_end, 1) +
           ",\"peak_rss_mib\":" + fixed(t.peak_rss_mib, 1) + ",\"requested_eps\":" + fixed(t.requested_eps, 0) +
           ",\"sender_cpu_share\":" + fixed(t.sender_cpu_share, 3) + ",\"sender_runnable_share\":" +
           fixed(t.sender_runnable_share, 3) + ",\"generator_limited\":" +
           (t.generator_limited ? "true" : "false") + ",\"generator_limited_why\":" + json_text(t.generator_why) +
           ",\"target_backpressure\":" + (t.target_backpressure ? "true" : "false") + ",\"held\":" +
           (t.held ? "true" : "false") + ",\"why\":" + json_text(t.why) + "}";
}

}  // namespace

std::string report_json(const SizeOptions& options, const std::vector<Trial>& trials, const Verdict& v,
                        double bytes_per_event, double lanes) {
    std::string json = "{\"reached\":" + std::string(v.reached ? "true" : "false") +
                       ",\"target_unreachable\":" + (v.target_unreachable ? "true" : "false") +
                       ",\"max_zero_loss_eps\":" + fixed(v.max_zero_loss_eps, 0) +
                       ",\"at_max_rate\":" + (v.at_max_rate ? "true" : "false") +
                       ",\"generator_limited\":" + (v.generator_limited ? "true" : "false") +
                       ",\"generator_limited_eps\":" + fixed(v.generator_limited_eps, 0) +
                       ",\"why\":" + json_text(v.why) + ",\"cpu_us_per_event\":" + fixed(v.cpu_us_per_event, 3) +
                       ",\"p99_ms\":" + fixed(v.p99_ms, 2) + ",\"peak_rss_mib\":" + fixed(v.peak_rss_mib, 1) +
                       ",\"hold_s\":" + fixed(options.hold_s, 1) + ",\"max_p99_ms\":" + fixed(options.max_p99_ms, 0) +
                       ",\"bytes_per_event\":" + fixed(bytes_per_event, 0) +
                       ",\"json_bytes_per_row\":" + fixed(v.json_bytes_per_row, 0) +
                       ",\"rows_per_request\":" + fixed(v.rows_per_request, 0) + ",\"lanes\":" + fixed(lanes, 0) +
                       ",\"cores\":" + std::to_string(std::thread::hardware_concurrency());
    if (options.peak_eps > 0) {
        json += ",\"peak_eps\":" + fixed(options.peak_eps, 0) + ",\"headroom\":" + fixed(options.headroom, 2) +
                ",\"capacity_per_collector_eps\":" + fixed(v.capacity_per_collector, 0) +
                ",\"collectors_needed\":" + std::to_string(v.collectors_needed) +
                ",\"dcr_bytes_per_min\":" + fixed(v.dcr_bytes_per_min, 0) +
                ",\"dcr_requests_per_min\":" + fixed(v.dcr_requests_per_min, 0) +
                ",\"dcrs_by_bytes\":" + std::to_string(v.dcrs_by_bytes) +
                ",\"dcrs_by_requests\":" + std::to_string(v.dcrs_by_requests) +
                ",\"dcrs_needed\":" + std::to_string(v.dcrs_needed);
    } else {
        json += ",\"collectors_needed\":null,\"dcrs_needed\":null";
    }
    json += ",\"trials\":[";
    for (std::size_t i = 0; i < trials.size(); ++i) json += (i == 0 ? "" : ",") + trial_json(trials[i]);
    return json + "]}\n";
}

std::string report_markdown(const SizeOptions& options, const std::vector<Trial>& trials, const Verdict& v,
                            double bytes_per_event, double lanes, const std::string& scaling_md) {
    std::string md = "# cefd sizing report\n\n";
    const unsigned cores = std::thread::hardware_concurrency();
    md += "Target " + options.load.host + ":" + std::to_string(options.load.port) + ", " +
          fixed(bytes_per_event, 0) + "-byte events on average, " + fixed(lanes, 0) + " cefd lane(s) on a " +
          std::to_string(cores) + "-core machine. A rate holds when nothing is lost, the backlog does not grow, " +
          "p99 from send to acceptance is at most " + fixed(options.max_p99_ms, 0) +
          " ms and the generator was not the limit (it offered at least 97% of the rate with its sender threads "
          "below 90% of a core each), for " + fixed(options.hold_s, 0) + " s.\n\n";
    md += "## Verdict\n\n";
    if (v.target_unreachable) {
        md +=
            "**No verdict: cefd stopped answering during the search** (its /metrics, or its process, was gone "
            "in the last trial below). Check its log (`journalctl -u cefd`) for a crash or an out-of-memory "
            "kill, then run the search again.\n\n";
    } else if (v.best == nullptr) {
        md += "No rate held for " + fixed(options.hold_s, 0) + " s (the lowest tried was " +
              fixed(options.start_rate, 0) + "/s); see the trials.\n\n";
    } else {
        md += "This collector holds **" + fixed(v.max_zero_loss_eps, 0) + " events/s" +
              (v.at_max_rate ? " or more (--max-rate)" : "") + "** with zero loss, at p99 " + fixed(v.p99_ms, 1) +
              " ms end to end and " + fixed(v.cpu_us_per_event, 2) + " cefd CPU-µs per event; peak RSS " +
              fixed(v.peak_rss_mib, 0) + " MiB.";
        if (v.max_zero_loss_eps < v.best->target_eps)
            md += " (The trial at " + fixed(v.best->target_eps, 0) + "/s offered " + fixed(v.max_zero_loss_eps, 0) +
                  "/s: the verdict is what it offered.)";
        md += "\n\n";
    }
    if (v.generator_limited) {
        md += "**The generator, not cefd, was the limit at " + fixed(v.generator_limited_eps, 0) +
              " ev/s** (" + v.why + "): run the generator on another machine or add --senders. " +
              (v.best != nullptr ? "The verdict above is a lower bound." : "") + "\n\n";
    }
    if (options.peak_eps > 0 && v.best != nullptr) {
        md += "## For a peak of " + fixed(options.peak_eps, 0) + " events/s\n\n";
        md += "| quantity | arithmetic | value |\n|---|---|---|\n";
        md += "| capacity per collector | " + fixed(v.max_zero_loss_eps, 0) + " x (1 - " + fixed(options.headroom, 2) +
              " headroom) | " + fixed(v.capacity_per_collector, 0) + " events/s |\n";
        md += "| collectors (" + std::to_string(cores) + " cores each, like this one) | ceil(" +
              fixed(options.peak_eps, 0) + " / " + fixed(v.capacity_per_collector, 0) + ") | **" +
              std::to_string(v.collectors_needed) + "** |\n";
        md += "| JSON bytes per minute | " + fixed(options.peak_eps, 0) + " x " + fixed(v.json_bytes_per_row, 0) +
              " B/row x 60 | " + fixed(v.dcr_bytes_per_min / 1e9, 3) + " GB/min |\n";
        md += "| DCRs by bytes | ceil(" + fixed(v.dcr_bytes_per_min / 1e9, 3) + " / 2 GB/min) | " +
              std::to_string(v.dcrs_by_bytes) + " |\n";
        md += "| requests per minute | " + fixed(options.peak_eps, 0) + " / " + fixed(v.rows_per_request, 0) +
              " rows/request x 60 | " + fixed(v.dcr_requests_per_min, 0) + " |\n";
        md += "| DCRs by requests | ceil(" + fixed(v.dcr_requests_per_min, 0) + " / 12,000 per min) | " +
              std::to_string(v.dcrs_by_requests) + " |\n";
        md += "| DCRs | max(1, by bytes, by requests) | **" + std::to_string(v.dcrs_needed) + "** |\n\n";
        md += "Per-DCR limits: 2 GB/min and 12,000 requests/min, from the project's Azure contract "
              "(`azure-logs-ingestion.md`, section 1.5 \"Limits (per DCR unless stated)\"; GB read as 10^9 "
              "bytes, the lower reading). Bytes are the uncompressed JSON rows the stand-in stored (the limit "
              "is stated for compressed and uncompressed data alike).\n\n";
    }
    md += scaling_md;
    md += "## Trials\n\n";
    md += "| phase | target/s | hold s | offered/s | delivered/s | lost | dup | p50 ms | p99 ms | max ms | cefd "
          "CPU-µs/event | loadgen CPU-µs/event | sender CPU | generator | backlog | RSS MiB | verdict |\n";
    md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const Trial& t : trials) {
        md += "| " + t.phase + " | " + fixed(t.target_eps, 0) + " | " + fixed(t.hold_s, 1) + " | " +
              fixed(t.offered_eps, 0) + " | " + fixed(t.delivered_eps, 0) + " | " + std::to_string(t.lost) + " | " +
              std::to_string(t.duplicated) + " | " + fixed(t.p50_ms, 1) + " | " + fixed(t.p99_ms, 1) + " | " +
              fixed(t.max_ms, 1) + " | " + fixed(t.cefd_cpu_us_per_event, 2) + " | " +
              fixed(t.loadgen_cpu_us_per_event, 2) + " | " + fixed(100 * t.sender_cpu_share, 0) + "% | " +
              (t.generator_limited ? "limited" : t.target_backpressure ? "target backpressure" : "ok") + " | " +
              fixed(t.backlog_start, 0) + " -> " +
              fixed(t.backlog_end, 0) + " | " + fixed(t.peak_rss_mib, 0) + " | " + (t.held ? "held" : t.why) + " |\n";
    }
    md += "\nBacklog: spool batches pending + ring bytes / 64 KiB, a third of the way into the trial and at its "
          "end. cefd CPU per event: utime + stime of the cefd process from the start of a trial until its rows "
          "arrived, over the rows delivered (cefd_send_delivered_rows_total). loadgen CPU per event: the "
          "generator's own. sender CPU: the sender threads' CPU over (threads x elapsed). generator: "
          "\"limited\" when the generator offered under 97% of the rate without the target pushing back, or "
          "its sender threads used 90% of a core or more (the run report's check_generator); such a trial "
          "never holds.\n\n"
          "![sizing chart](sizing.svg)\n";
    return md;
}


std::string sizing_svg(const std::vector<Trial>& input, const Verdict& verdict, double max_p99_ms) {
    std::vector<const Trial*> trials;
    for (const Trial& t : input) trials.push_back(&t);
    std::sort(trials.begin(), trials.end(), [](const Trial* a, const Trial* b) { return a->target_eps < b->target_eps; });
    const double width = 760, panel_height = 150, left = 80, right = 20, top = 40, gap = 45;
    const double height = top + 4 * (panel_height + gap) + 10;
    double x_max = 1;
    for (const Trial* t : trials) x_max = std::max({x_max, t->target_eps, t->offered_eps});
    x_max *= 1.05;
    const auto x_of = [&](double x) { return left + (width - left - right) * x / x_max; };
    std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fixed(width, 0) + "\" height=\"" +
                      fixed(height, 0) + "\" font-family=\"sans-serif\" font-size=\"11\">\n";
    svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    svg += "<text x=\"" + fixed(left, 0) + "\" y=\"22\" font-size=\"14\">cefd sizing: verdict " +
           fixed(verdict.max_zero_loss_eps, 0) + " events/s (dashed line), against the offered rate</text>\n";
    struct Series {
        const char* label;
        const char* colour;
        double (*value)(const Trial&);
    };
    struct Panel {
        const char* title;
        std::vector<Series> series;
        double bound;  // a horizontal dashed line (0: none)
    };
    const std::vector<Panel> panels{
        {"events/s: offered (grey) and delivered (blue)",
         {{"offered", "#888888", [](const Trial& t) { return t.offered_eps; }},
          {"delivered", "#1f77b4", [](const Trial& t) { return t.delivered_eps; }}},
         0},
        {"loss %", {{"loss", "#d62728", [](const Trial& t) { return t.loss_pct; }}}, 0},
        {"cefd CPU-µs per event (green), loadgen's (grey)",
         {{"cefd", "#2ca02c", [](const Trial& t) { return t.cefd_cpu_us_per_event; }},
          {"loadgen", "#888888", [](const Trial& t) { return t.loadgen_cpu_us_per_event; }}},
         0},
        {"p99 ms, send to acceptance (bound dashed)",
         {{"p99", "#9467bd", [](const Trial& t) { return t.p99_ms; }}},
         max_p99_ms},
    };
    for (std::size_t p = 0; p < panels.size(); ++p) {
        const Panel& panel = panels[p];
        const double y0 = top + static_cast<double>(p) * (panel_height + gap) + 15;
        double y_max = panel.bound * 1.1;
        for (const Series& series : panel.series) {
            for (const Trial* t : trials) y_max = std::max(y_max, series.value(*t));
        }
        if (y_max <= 0) y_max = 1;
        y_max *= 1.1;
        const auto y_of = [&](double y) { return y0 + panel_height - panel_height * y / y_max; };
        svg += "<text x=\"" + fixed(left, 0) + "\" y=\"" + fixed(y0 - 4, 0) + "\">" + panel.title + "</text>\n";
        svg += "<rect x=\"" + fixed(left, 0) + "\" y=\"" + fixed(y0, 0) + "\" width=\"" + fixed(width - left - right, 0) +
               "\" height=\"" + fixed(panel_height, 0) + "\" fill=\"none\" stroke=\"#444\"/>\n";
        for (int tick = 0; tick <= 4; ++tick) {
            const double y = y_max * tick / 4;
            svg += "<text x=\"" + fixed(left - 6, 0) + "\" y=\"" + fixed(y_of(y) + 4, 0) + "\" text-anchor=\"end\">" +
                   fixed(y, y_max < 10 ? 2 : 0) + "</text>\n";
            const double x = x_max * tick / 4;
            svg += "<text x=\"" + fixed(x_of(x), 0) + "\" y=\"" + fixed(y0 + panel_height + 14, 0) +
                   "\" text-anchor=\"middle\">" + fixed(x, 0) + "/s</text>\n";
        }
        if (panel.bound > 0) {
            svg += "<line x1=\"" + fixed(left, 0) + "\" x2=\"" + fixed(width - right, 0) + "\" y1=\"" +
                   fixed(y_of(panel.bound), 1) + "\" y2=\"" + fixed(y_of(panel.bound), 1) +
                   "\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/>\n";
        }
        if (verdict.max_zero_loss_eps > 0) {
            const double x = x_of(verdict.max_zero_loss_eps);
            svg += "<line x1=\"" + fixed(x, 1) + "\" x2=\"" + fixed(x, 1) + "\" y1=\"" + fixed(y0, 0) + "\" y2=\"" +
                   fixed(y0 + panel_height, 0) + "\" stroke=\"#000\" stroke-dasharray=\"6 4\"/>\n";
        }
        for (const Series& series : panel.series) {
            std::string points;
            for (const Trial* t : trials) {
                points += fixed(x_of(t->target_eps), 1) + "," + fixed(y_of(series.value(*t)), 1) + " ";
            }
            svg += "<polyline fill=\"none\" stroke=\"" + std::string(series.colour) + "\" stroke-width=\"1.5\" points=\"" +
                   points + "\"/>\n";
            for (const Trial* t : trials) {
                // Filled: the trial held; hollow: it did not.
                svg += "<circle cx=\"" + fixed(x_of(t->target_eps), 1) + "\" cy=\"" + fixed(y_of(series.value(*t)), 1) +
                       "\" r=\"3\" stroke=\"" + series.colour + "\" fill=\"" + (t->held ? series.colour : "white") +
                       "\"/>\n";
            }
        }
    }
    return svg + "</svg>\n";
}

bool write_text(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    return static_cast<bool>(out);
}


}  // namespace cefd::loadgen::sizing
