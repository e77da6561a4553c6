// cefd-check [--quiet] [FILE...]: the row linter (rows_lint.h) as its own binary; the same as
// `cefd check rows`.
#include <string>
#include <vector>

#include "tools/check/rows_lint.h"

int main(int argc, char** argv) {
    return cefd::rows_lint(std::vector<std::string>(argv + 1, argv + argc), "cefd-check");
}
