// tools/loadgen/options.h: cefd-loadgen's command line (README.md lists every flag).
#pragma once

#include <cstdint>
#include <string>

namespace cefd::loadgen {

struct LoadgenOptions {
    enum class Proto : std::uint8_t { udp, tcp, tls };
    /// What to send when there is no --file: the 28 small embedded samples, the 48 embedded
    /// ~850-byte model breaches, or the template mix (templates.h), reproducible with --seed.
    enum class Payload : std::uint8_t { samples, breach_853b, templates };
    enum class Framing : std::uint8_t { newline, octet };

    std::string host = "127.0.0.1";
    std::uint16_t port = 5514;
    Proto proto = Proto::udp;
    /// TCP only: newline-terminated frames or RFC 6587 octet counting ("<len> <msg>").
    Framing framing = Framing::newline;
    /// Empty: the embedded Darktrace samples.
    std::string file;
    Payload payload = Payload::samples;
    std::uint64_t seed = 1;
    /// Events per second over all senders; 0 = as fast as possible.
    double rate_eps = 0;
    /// --ramp start:step:hold: rate = start + step * floor(t / hold). Overrides --rate.
    double ramp_start_eps = 0;
    double ramp_step_eps = 0;
    double ramp_hold_s = 0;
    /// UDP/TCP/TLS sockets over all senders (at least one per sender); UDP bursts rotate over
    /// a sender's sockets, so SO_REUSEPORT lanes see many 4-tuples.
    std::uint32_t flows = 0;
    /// TLS: the CA file to verify the server with; empty = do not verify (a test target).
    std::string ca_file;
    /// Events to send; 0 with no duration = every line of the file once.
    std::uint64_t count = 0;
    double duration_s = 0;
    std::uint32_t senders = 1;
    /// Letters, digits, '_', '.', '-'. Default: 8 random hex digits.
    std::string run_id;
    bool stamp = true;
    /// Appends " cefdts=<unix µs>" (the send time) after the sequence stamp: on with --verify
    /// or --timestamps.
    bool stamp_time = false;
    std::string verify_path;
    /// The stand-in's --accept-log (default: the --verify path + ".accept" when it exists).
    /// With it, events carry their send time (" cefdts=<unix µs>") and verify reports latency.
    std::string accept_log_path;
    double wait_s = 30;
    bool verify_only = false;
    double report_interval_s = 0;
};

/// Parses argv. On a usage error returns false and fills `error`; `help` is set for --help.
bool parse_options(int argc, char** argv, LoadgenOptions& options, std::string& error, bool& help);

extern const char* const usage_text;

}  // namespace cefd::loadgen
