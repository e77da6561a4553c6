// stages/receive/engine_choice.h: what receive.engine = "auto" runs, measured at start.
//
// Which engine costs less per UDP datagram depends on the kernel and the machine (bench/README.md,
// "Receive engines": recvmmsg was cheaper on one box, io_uring on another, by 10-80%). So "auto"
// does not guess: once per process, before the lanes open, it runs each engine on a private
// loopback socket (127.0.0.1, an ephemeral port; the configured ports are not touched), sends it
// the same ~850-byte CEF datagrams paced at 256k/s, and takes the receive thread's CPU time per
// datagram, alternating the engines over two rounds each (about 0.25 s in all). io_uring is chosen
// only if it is at least 10% cheaper in every round; otherwise recvmmsg, the engine that needs
// nothing of the kernel beyond epoll. The start-up line gives both figures. The result is kept in
// the spool directory (RECEIVE-ENGINE) and reused while the kernel, CPU and buffer settings are the
// same, so restarts do not leave the ports closed for the measurement.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "engine/result.h"
#include "stages/receive/receive.h"

namespace cefd::receive {

/// One engine's receive thread over one calibration round.
struct EngineCost {
    std::uint64_t sent = 0;     // datagrams sent to it
    std::uint64_t written = 0;  // datagrams it wrote to the ring
    std::uint64_t lost = 0;     // datagrams the kernel or the ring dropped (counted, never logged)
    std::int64_t cpu_ns = 0;    // its receive thread's CPU time over the round
    [[nodiscard]] double us_per_datagram() const noexcept {
        return written == 0 ? 0.0 : static_cast<double>(cpu_ns) / 1000.0 / static_cast<double>(written);
    }
};

/// Runs `engine` (io_uring or recvmmsg) on a private loopback UDP socket with `config`'s buffer
/// settings and sends it `datagrams` datagrams of about 850 bytes, paced at `rate` per second.
Result<EngineCost> measure_engine(ReceiveConfig::Engine engine, const ReceiveConfig& config, std::uint32_t datagrams,
                                  std::uint32_t rate = 256'000);

/// The engine "auto" runs and the reason, as the start-up line gives it.
struct EngineChoice {
    ReceiveConfig::Engine engine = ReceiveConfig::Engine::recvmmsg;
    std::string why;
};

/// The rule: io_uring when it is at least 10% cheaper per datagram than recvmmsg in every round
/// (uring_us[i] against recvmmsg_us[i]), recvmmsg otherwise; `why` gives the figures and the
/// verdict. Pure, for tests.
EngineChoice decide_engine(std::span<const double> uring_us, std::span<const double> recvmmsg_us);

/// What "auto" runs: probes io_uring and measures both engines. With `state_file`, a choice
/// measured before with the same kernel, CPU and buffer settings (its key= line) is read from it
/// instead, so a restart binds its ports without the 0.25 s of measuring; a new measurement is
/// written to it (a failure to write is logged, not fatal). Delete the file to measure again.
EngineChoice choose_automatic_engine(const ReceiveConfig& config, const std::string& state_file = {});

/// choose_automatic_engine once per process: the first call decides (Pipeline::build makes it,
/// with the spool directory's RECEIVE-ENGINE file, before any lane opens); every later call,
/// whatever its arguments, returns the same choice.
const EngineChoice& automatic_engine(const ReceiveConfig& config, const std::string& state_file = {});

}  // namespace cefd::receive
