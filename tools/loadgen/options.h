// tools/loadgen/options.h: cefd-loadgen's command line (README.md lists every flag).
#pragma once

#include <cstdint>
#include <string>

namespace cefd::loadgen {

struct LoadgenOptions {
    enum class Proto : std::uint8_t { udp, tcp };
    enum class Framing : std::uint8_t { newline, octet };

    std::string host = "127.0.0.1";
    std::uint16_t port = 5514;
    Proto proto = Proto::udp;
    /// TCP only: newline-terminated frames or RFC 6587 octet counting ("<len> <msg>").
    Framing framing = Framing::newline;
    /// Empty: the embedded Darktrace samples.
    std::string file;
    /// Events per second over all senders; 0 = as fast as possible.
    double rate_eps = 0;
    /// Events to send; 0 with no duration = every line of the file once.
    std::uint64_t count = 0;
    double duration_s = 0;
    std::uint32_t senders = 1;
    /// Letters, digits, '_', '.', '-'. Default: 8 random hex digits.
    std::string run_id;
    bool stamp = true;
    std::string verify_path;
    double wait_s = 30;
    bool verify_only = false;
    double report_interval_s = 0;
};

/// Parses argv. On a usage error returns false and fills `error`; `help` is set for --help.
bool parse_options(int argc, char** argv, LoadgenOptions& options, std::string& error, bool& help);

extern const char* const usage_text;

}  // namespace cefd::loadgen
