// tools/loadgen/size.h: `cefd-loadgen size`, the sizing verdict (see README.md "Sizing").
#pragma once

namespace cefd::loadgen {

/// argv[0] is "size". Returns the process exit code: 0 verdict reached, 1 no verdict, 2 usage.
int run_size(int argc, char** argv);

}  // namespace cefd::loadgen
