// tools/loadgen/payload.h: the lines cefd-loadgen sends: --file, or an embedded payload.
#pragma once

#include <string>
#include <vector>

#include "tools/loadgen/options.h"

namespace cefd::loadgen {

/// The lines of --file (empty lines and '#' comments skipped, trailing whitespace removed), or
/// the embedded payload --payload names. Empty with `error` filled when there is nothing to send.
std::vector<std::string> payload_lines(const LoadgenOptions& options, std::string& error);

}  // namespace cefd::loadgen
