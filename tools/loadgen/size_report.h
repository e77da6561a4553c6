// tools/loadgen/size_report.h: the files `cefd-loadgen size` writes into --out: report.json,
// report.md (the verdict, the arithmetic, the per-core scaling and every trial) and sizing.svg
// (offered vs delivered, loss, CPU per event and p99 against the offered rate), standard library
// only.
#pragma once

#include <string>
#include <vector>

#include "tools/loadgen/size_options.h"
#include "tools/loadgen/size_trial.h"
#include "tools/loadgen/size_verdict.h"

namespace cefd::loadgen::sizing {

/// `value` with `decimals` decimals ("%.*f").
std::string fixed(double value, int decimals);

std::string report_json(const SizeOptions& options, const std::vector<Trial>& trials, const Verdict& v,
                        double bytes_per_event, double lanes);
/// `scaling_md` is the per-core scaling section (empty without --cefd), placed after the verdict.
std::string report_markdown(const SizeOptions& options, const std::vector<Trial>& trials, const Verdict& v,
                            double bytes_per_event, double lanes, const std::string& scaling_md);
/// Four panels against the offered rate: offered and delivered events/s, loss %, cefd CPU-µs per
/// event, p99 ms. Plain SVG 1.1, no script, no external font.
std::string sizing_svg(const std::vector<Trial>& input, const Verdict& verdict, double max_p99_ms);

/// Replaces `path` with `text`; false on any error.
bool write_text(const std::string& path, const std::string& text);

}  // namespace cefd::loadgen::sizing
