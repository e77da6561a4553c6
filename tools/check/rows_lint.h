// tools/check/rows_lint.h: the CommonSecurityLog row linter (rules: tools/check/README.md), as a
// function, so that `cefd-check` and `cefd check rows` are the same code.
#pragma once

#include <string>
#include <vector>

namespace cefd {

/// Lints the rows in the files `args` names (stdin when none; "--quiet": the summary only).
/// Prints one line per problem and the JSON summary on stdout, usage and unreadable files on
/// stderr, naming `program`. Returns the exit code: 0 no errors, 1 any error, 2 bad usage or
/// an unreadable file.
int rows_lint(const std::vector<std::string>& args, const char* program);

}  // namespace cefd
