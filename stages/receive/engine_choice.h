// stages/receive/engine_choice.h: what receive.engine = "auto" runs, measured at start.
//
// Which engine costs less per UDP datagram depends on the kernel and the machine (bench/README.md,
// "Receive engines": recvmmsg was cheaper on one box, io_uring on another, by 10-80%). So "auto"
// does not guess: once per process, before the lanes open, it runs each engine on a private
// loopback socket (127.0.0.1, an ephemeral port; the configured ports are not touched), sends it
// the same ~850-byte CEF datagrams paced at 256k/s, and takes the receive thread's CPU time per
// datagram, alternating the engines over two rounds each (about 0.2 s in all). io_uring is chosen
// only if it is at least 10% cheaper in every round; otherwise recvmmsg, the engine that needs
// nothing of the kernel beyond epoll. The start-up line gives both figures.
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

/// What "auto" runs in this process: probes io_uring, measures both engines once (the first
/// call, with its config's buffer settings) and returns the same choice to every later call.
const EngineChoice& automatic_engine(const ReceiveConfig& config);

}  // namespace cefd::receive
