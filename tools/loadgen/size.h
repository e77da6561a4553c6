// tools/loadgen/size.h: `cefd-loadgen size`, the sizing verdict for one collector VM.
//
// It drives a running cefd (the target) with the loadgen's own senders and watches three things:
// the stand-in's rows (every event is stamped, so loss, duplicates and send-to-acceptance
// latency are exact, verify.h), cefd's /metrics (cefd_send_delivered_rows_total,
// cefd_ring_used_bytes, cefd_spool_pending_batches, cefd_send_delivered_batches_total; summed
// over labels, any series may gain labels), and cefd's process in /proc (CPU ticks, VmHWM).
//
// A trial offers one rate for a while and holds when: nothing is lost, the backlog (ring bytes
// + spool batches) does not keep growing, the p99 latency is within --max-p99-ms, and the
// generator was not the limit (check_generator in sender.h, the run report's own check: it
// offered at least 97% of the rate unless the target pushed back, with its sender threads below
// 90% of a core). A generator-limited trial never holds; when the rate above the verdict failed
// only for the generator, the report says the generator, not cefd, was the limit. The search:
//   1. ramp: --start-rate, doubled each step (trials of max(2, hold/4) s) until one fails or
//      --max-rate holds;
//   2. bisect between the last rate that held and the first that failed, with --hold-s trials,
//      until they are within 10% (at most --bisect-steps trials);
//   3. the verdict is the highest rate that held for the full --hold-s.
// Then, with --peak-eps P and --headroom H: collectors = ceil(P / (verdict * (1 - H))), and DCRs
// from Azure's per-DCR limits (2 GB/min and 12,000 requests/min) with the measured JSON bytes
// per row and rows per request.
//
// Per-core scaling: with --cefd BIN --config FILE [--lanes 1,2,...] (default 1..cores), size
// starts cefd itself once per lane count from a copy of FILE with runtime.workers = k (waiting
// for its /metrics), runs the whole search against it, stops it with SIGTERM, and reports each
// count's verdict and its ratio to the first; the main verdict is the last count's.
//
// Output in --out DIR: report.json, report.md (the tables and the arithmetic) and sizing.svg
// (offered vs delivered, loss, CPU per event and p99 against the offered rate), written with the
// standard library only.
#pragma once

namespace cefd::loadgen {

/// argv[0] is "size". Returns the process exit code: 0 a verdict was reached, 1 none could be
/// (cefd or its metrics unreachable), 2 bad usage.
int run_size(int argc, char** argv);

}  // namespace cefd::loadgen
