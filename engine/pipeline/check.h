// engine/pipeline/check.h: `cefd check`, the end-to-end self-test of one collector.
//
// Runs its steps in order on the calling thread and reports each as PASS, WARN or FAIL with a
// message and a concrete fix hint: config; open-file limit; every listener bindable; sysctls
// against receive.rcvbuf_bytes; io_uring; spool dir writable and its disk's free space; DNS,
// TCP and TLS (chain, name, clock skew) to every ingestion endpoint and the authority; a
// token; one direct request per DCR and stream; and finally a test CEF event sent through
// cefd's own listener and confirmed delivered (its marker and the KQL to find it are printed).
//
// Without `running`, the last step builds the real Pipeline in-process on the configured
// ports and spool (refusing, like `cefd run`, when another instance holds them), sends the
// event, waits for the sender's delivered count, then stops cleanly. With `running`, it reads
// the running instance's /metrics instead of binding anything, sends the event to its
// listener, and waits for its delivered counter to move.
//
// The direct request and the test event each add one row to CommonSecurityLog, with
// DeviceProduct "cefd check" and the marker in AdditionalExtensions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cefd {

struct CheckOptions {
    std::string config_path;
    bool running = false;  // check a running instance through its /metrics
    bool json = false;     // print a JSON array instead of lines
    /// Longest wait for the test event's delivery.
    std::uint32_t timeout_s = 60;
};

struct CheckStep {
    enum class Status : std::uint8_t { pass, warn, fail };
    std::string step;
    Status status = Status::pass;
    std::string message;
    std::string hint;  // empty when there is nothing to do
};

/// Every step, in order. Steps that cannot run after an earlier failure say so (FAIL).
std::vector<CheckStep> run_checks(const CheckOptions& options);
/// `[{"step":...,"status":"PASS","message":...,"hint":...}, ...]`
std::string check_steps_json(const std::vector<CheckStep>& steps);
/// "PASS  step: message" lines, each FAIL/WARN followed by "      fix: hint".
std::string check_steps_text(const std::vector<CheckStep>& steps);
/// `cefd check`: runs, prints, returns 0 when no step failed (warnings allowed), else 1.
int check_command(const CheckOptions& options);

}  // namespace cefd
