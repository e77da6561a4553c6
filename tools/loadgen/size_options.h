// tools/loadgen/size_options.h: `cefd-loadgen size`'s command line. Its own flags (--metrics,
// --out, --hold-s, ...) are parsed here; the loadgen flags it shares (--target, --proto,
// --payload, ...) go through parse_options, so both spell them the same. Defaults that make a
// sizing run realistic are set here too: 853-byte events, many UDP source ports, stamped
// sequence and send time.
#pragma once

#include <string>
#include <vector>

#include "tools/loadgen/options.h"

namespace cefd::loadgen::sizing {

struct SizeOptions {
    LoadgenOptions load;
    std::string metrics_url;
    std::string out_dir;
    double peak_eps = 0;
    double headroom = 0.3;
    double hold_s = 30;
    double max_p99_ms = 5000;
    double max_rate = 1'000'000;
    double start_rate = 1'000;
    double drain_s = 0;
    int pid = 0;
    int bisect_steps = 4;
    /// Per-core scaling: cefd is started from this binary and config once per lane count,
    /// with runtime.workers set to it. Empty: size the cefd that is already running.
    std::string cefd_binary;
    std::string cefd_config;
    std::vector<unsigned> lanes;
};

extern const char* const size_usage;

/// Fills `options` from argv (argv[0] is "size"). On a usage error returns false with `error`
/// filled; `error` is "help" for --help.
bool parse_size_options(int argc, char** argv, SizeOptions& options, std::string& error);

}  // namespace cefd::loadgen::sizing
