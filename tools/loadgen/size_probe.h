// tools/loadgen/size_probe.h: what `cefd-loadgen size` reads from the running cefd: its
// Prometheus /metrics (summed over labels, so any series may gain labels) and its process in
// /proc (found by the socket listening on the target port; CPU ticks and VmHWM).
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace cefd::loadgen::sizing {

/// GET over plain HTTP/1.0 (cefd's exporter is loopback HTTP); empty on failure.
std::string http_get(const std::string& url);

/// Prometheus text format: "name{labels} value [timestamp]" per line; values of one name are
/// summed over its label sets. Comments and lines that do not parse are skipped.
std::map<std::string, double, std::less<>> parse_metrics(std::string_view text);

struct Scrape {
    bool ok = false;
    double delivered_rows = 0;
    double delivered_batches = 0;
    double ring_used_bytes = 0;
    double spool_pending_batches = 0;
    double lanes = 0;
};

/// The counters a trial needs from `url`; ok = false when cefd did not answer with them.
Scrape scrape(const std::string& url);

/// The process holding the socket that listens on the target port (cefd), or 0.
int find_listener_pid(int port, bool tcp);

/// utime + stime of `pid` in seconds (-1 if it is gone).
double process_cpu_s(int pid);

/// VmHWM (peak resident set) of `pid` in MiB.
double peak_rss_mib(int pid);

}  // namespace cefd::loadgen::sizing
