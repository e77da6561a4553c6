#include "tools/loadgen/options.h"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <string_view>

namespace cefd::loadgen {

const char* const usage_text =
    "usage: cefd-loadgen [options]\n"
    "  --target HOST:PORT     where to send (default 127.0.0.1:5514; [::1]:PORT for IPv6)\n"
    "  --proto udp|tcp|tls    (default udp)\n"
    "  --cacert FILE          TLS: verify the server with this CA (default: no verification)\n"
    "  --framing newline|octet  TCP framing (default newline; octet = RFC 6587 octet counting)\n"
    "  --file PATH            lines to send, cycled (default: embedded Darktrace samples)\n"
    "  --payload samples|853b|templates  without --file: the 28 small samples (default), 48\n"
    "                         ~850-byte model breaches, or the Darktrace template mix\n"
    "  --seed N               templates: the random seed (default 1)\n"
    "  --rate N               events/s over all senders; 0 = flat out (default 0)\n"
    "  --ramp START:STEP:HOLD rate START, raised by STEP every HOLD seconds\n"
    "  --count N              events to send\n"
    "  --duration S           seconds to send for (with --count: whichever ends first)\n"
    "  --senders N            sender threads (default 1)\n"
    "  --flows N              sockets/connections over all senders (default: one per sender)\n"
    "  --run-id ID            stamp prefix (default: random hex)\n"
    "  --no-stamp             send lines unchanged\n"
    "  --verify FILE          the stand-in's JSONL: count delivered/lost/duplicated events\n"
    "  --accept-log FILE      the stand-in's --accept-log (default FILE.accept if present)\n"
    "  --timestamps           stamp the send time (cefdts=) without --verify\n"
    "  --wait-s S             verify: wait until all seen or FILE idle for S s (default 30)\n"
    "  --verify-only          verify without sending (needs --run-id and --count)\n"
    "  --report-interval-s S  progress line on stderr every S seconds\n"
    "exit: 0 ok, 1 events lost (or sending failed), 2 bad usage\n";

namespace {

bool parse_unsigned(std::string_view text, std::uint64_t& out) {
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
    return !text.empty() && error == std::errc{} && end == text.data() + text.size();
}

bool parse_seconds(const std::string& text, double& out) {
    char* end = nullptr;
    out = std::strtod(text.c_str(), &end);
    return !text.empty() && end == text.c_str() + text.size() && out >= 0 && out < 1e9;
}

bool parse_target(const std::string& text, LoadgenOptions& options) {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) return false;
    std::string host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    std::uint64_t port = 0;
    if (!parse_unsigned(std::string_view(text).substr(colon + 1), port) || port == 0 || port > 65535) return false;
    options.host = host;
    options.port = static_cast<std::uint16_t>(port);
    return true;
}

/// "START:STEP:HOLD" (events/s, events/s, seconds); HOLD must be positive.
bool parse_ramp(const std::string& text, LoadgenOptions& options) {
    const std::size_t first = text.find(':');
    const std::size_t second = first == std::string::npos ? first : text.find(':', first + 1);
    if (second == std::string::npos) return false;
    double start = 0;
    double step = 0;
    double hold = 0;
    if (!parse_seconds(text.substr(0, first), start) || !parse_seconds(text.substr(first + 1, second - first - 1), step) ||
        !parse_seconds(text.substr(second + 1), hold) || hold <= 0 || start + step <= 0) {
        return false;
    }
    options.ramp_start_eps = start;
    options.ramp_step_eps = step;
    options.ramp_hold_s = hold;
    return true;
}

std::string random_run_id() {
    unsigned char bytes[4] = {};
    if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) {
        // getrandom on 4 bytes does not fail after boot; the address of a local is a fallback.
        const auto fallback = reinterpret_cast<std::uintptr_t>(&bytes);
        for (std::size_t i = 0; i < sizeof bytes; ++i) bytes[i] = static_cast<unsigned char>(fallback >> (8 * i));
    }
    static constexpr char digits[] = "0123456789abcdef";
    std::string id;
    for (const unsigned char b : bytes) {
        id += digits[b >> 4];
        id += digits[b & 0xf];
    }
    return id;
}

}  // namespace

bool parse_options(int argc, char** argv, LoadgenOptions& options, std::string& error, bool& help) {
    help = false;
    bool count_given = false;
    bool run_id_given = false;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "--help" || flag == "-h") {
            help = true;
            return false;
        }
        if (flag == "--no-stamp") {
            options.stamp = false;
            continue;
        }
        if (flag == "--timestamps") {
            options.stamp_time = true;
            continue;
        }
        if (flag == "--verify-only") {
            options.verify_only = true;
            continue;
        }
        constexpr std::array<std::string_view, 18> valued{
            "--target", "--proto",  "--framing", "--file",   "--rate",   "--count",
            "--duration", "--senders", "--run-id", "--verify", "--wait-s", "--report-interval-s",
            "--payload", "--seed",  "--ramp",    "--flows",  "--cacert", "--accept-log"};
        if (std::find(valued.begin(), valued.end(), flag) == valued.end()) {
            error = "unknown flag " + flag;
            return false;
        }
        if (i + 1 >= argc) {
            error = "missing value for " + flag;
            return false;
        }
        const std::string value = argv[++i];
        std::uint64_t number = 0;
        bool ok = true;
        if (flag == "--target") {
            ok = parse_target(value, options);
        } else if (flag == "--proto") {
            ok = value == "udp" || value == "tcp" || value == "tls";
            options.proto = value == "tcp"   ? LoadgenOptions::Proto::tcp
                            : value == "tls" ? LoadgenOptions::Proto::tls
                                             : LoadgenOptions::Proto::udp;
        } else if (flag == "--framing") {
            ok = value == "newline" || value == "octet";
            options.framing = value == "octet" ? LoadgenOptions::Framing::octet : LoadgenOptions::Framing::newline;
        } else if (flag == "--file") {
            options.file = value;
        } else if (flag == "--payload") {
            ok = value == "samples" || value == "853b" || value == "templates";
            options.payload = value == "853b"        ? LoadgenOptions::Payload::breach_853b
                              : value == "templates" ? LoadgenOptions::Payload::templates
                                                     : LoadgenOptions::Payload::samples;
        } else if (flag == "--seed") {
            ok = parse_unsigned(value, options.seed);
        } else if (flag == "--ramp") {
            ok = parse_ramp(value, options);
        } else if (flag == "--flows") {
            ok = parse_unsigned(value, number) && number >= 1 && number <= 4096;
            options.flows = static_cast<std::uint32_t>(number);
        } else if (flag == "--cacert") {
            options.ca_file = value;
        } else if (flag == "--accept-log") {
            options.accept_log_path = value;
        } else if (flag == "--rate") {
            ok = parse_seconds(value, options.rate_eps);
        } else if (flag == "--count") {
            ok = parse_unsigned(value, options.count);
            count_given = true;
        } else if (flag == "--duration") {
            ok = parse_seconds(value, options.duration_s);
        } else if (flag == "--senders") {
            ok = parse_unsigned(value, number) && number >= 1 && number <= 1024;
            options.senders = static_cast<std::uint32_t>(number);
        } else if (flag == "--run-id") {
            ok = !value.empty() && value.size() <= 64;
            for (const char c : value) {
                ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                            c == '_' || c == '.' || c == '-');
            }
            options.run_id = value;
            run_id_given = true;
        } else if (flag == "--verify") {
            options.verify_path = value;
        } else if (flag == "--wait-s") {
            ok = parse_seconds(value, options.wait_s);
        } else if (flag == "--report-interval-s") {
            ok = parse_seconds(value, options.report_interval_s);
        } else {
            error = "unknown flag " + flag;
            return false;
        }
        if (!ok) {
            error = "bad value '" + value + "' for " + flag;
            return false;
        }
    }
    if (options.verify_only) {
        if (!run_id_given || !count_given || options.verify_path.empty()) {
            error = "--verify-only needs --verify FILE, --run-id and --count";
            return false;
        }
    }
    if (options.verify_path.size() > 0 && !options.stamp) {
        error = "--verify needs stamped events (drop --no-stamp)";
        return false;
    }
    if (options.flows == 0) options.flows = options.senders;
    if (options.flows < options.senders) {
        error = "--flows must be at least --senders";
        return false;
    }
    if (!options.verify_path.empty()) options.stamp_time = true;
    if (options.stamp_time && !options.stamp) {
        error = "--timestamps needs stamped events (drop --no-stamp)";
        return false;
    }
    if (!run_id_given) options.run_id = random_run_id();
    return true;
}

}  // namespace cefd::loadgen
