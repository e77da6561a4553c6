// tools/loadgen/size_cefd.h: per-core scaling for `cefd-loadgen size --cefd BIN --config FILE`:
// a copy of FILE with runtime.workers = k, and a cefd child started from it, ready once its
// /metrics answer, stopped with SIGTERM when the object goes.
#pragma once

#include <string>

#include "tools/loadgen/size_options.h"

namespace cefd::loadgen::sizing {

/// The config text with runtime.workers = lanes: an existing key in [runtime] is dropped and
/// the new one written right after the table header; no [runtime] table: one is appended.
/// Line-based, which is enough for cefd's own configs (no inline tables for [runtime]).
std::string config_with_lanes(const std::string& text, unsigned lanes);

/// A cefd started by `size` for one lane count; SIGTERM and wait on destruction.
class CefdChild {
public:
    /// Writes the config copy into --out and starts cefd; `error` is filled when it failed.
    CefdChild(const SizeOptions& options, unsigned lanes, std::string& error);
    ~CefdChild();
    CefdChild(const CefdChild&) = delete;
    CefdChild& operator=(const CefdChild&) = delete;
    [[nodiscard]] int pid() const noexcept { return pid_; }

private:
    int pid_ = -1;
};

}  // namespace cefd::loadgen::sizing
