// tools/loadgen/replay.h: `cefd-loadgen replay FILE.zst`: sends a cefd capture again.
//
// Reads a capture file (engine/capture/capture_format.h) record by record and sends each
// message to --target as it came: over UDP by default, or --proto tcp (newline or --framing
// octet). Timing: the gaps between arrival times, divided by --speed (10x = ten times faster,
// max = no waiting; default 1x). --preserve-sources opens one UDP socket per original source
// (address and port), so cefd sees as many senders and SO_REUSEPORT spreads them like the
// original traffic; a source in 127.0.0.0/8 is bound to its own address. Prints one JSON line.
#pragma once

namespace cefd::loadgen {

/// argv[0] is "replay". Returns 0 when the file was replayed to its end, 1 when it was cut
/// short or sending failed, 2 on bad usage.
int run_replay(int argc, char** argv);

}  // namespace cefd::loadgen
