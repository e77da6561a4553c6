// engine/pipeline/replay_dead_letter.h: `cefd replay-dead-letter --config FILE [DIR]`.
//
// Re-sends batches Azure refused (stages/send/dead_letter.h) once the cause is fixed: each
// dead letter in DIR (default: azure.dead_letter_dir) is read back, put into the spool named by
// the config (mode "always", fsync per batch, so it is on disk before the next step), and then
// moved to DIR/replayed/. A second run therefore sends nothing twice; a crash between the two
// steps can resend one batch (at-least-once, as everywhere). The spool's directory lock makes
// it refuse to run while a cefd uses the same spool: stop cefd, replay, start cefd.
// Prints one summary line: files, batches, rows, skipped (damaged, left in place).
#pragma once

#include <string>
#include <vector>

#include "stages/send/send.h"

namespace cefd {

/// The streams whose dead letters hold Syslog rows: every target's syslog_stream, and
/// Microsoft-Syslog, the default before Custom-Syslog. Azure refused that stream (404), so
/// dead letters naming it exist; without it here they would be replayed as CommonSecurityLog,
/// where Azure drops every Syslog column without an error.
std::vector<std::string> dead_letter_syslog_streams(const AzureConfig& azure);

/// argv[0] is "replay-dead-letter". Exit codes: 0 all replayed (or nothing to do), 1 some were
/// damaged or the spool refused one, 2 bad usage, a bad config or the spool is in use.
int replay_dead_letter_main(int argc, char** argv);

}  // namespace cefd
