#include "tools/loadgen/size.h"

namespace cefd::loadgen {

int run_size(int, char**) { return 2; }

}  // namespace cefd::loadgen
