// stages/receive/engine.h: the small interface between a Receiver and its engine, and what
// every engine shares that is not about connections (see connection_table.h for those).
//
// A Receiver owns one Engine (io_uring in uring_engine.cpp, recvmmsg + epoll in
// recvmmsg_engine.cpp). The engine owns the lane's sockets, its event loop and its
// ConnectionTable; it is told the Receiver's stats and reload flag when it is opened. Only the
// lane's receive thread calls into an engine after open.
//
// Intake is the lane's output side: the limits derived from the config, writing a message into
// the lane ring (through engine/record.h), and UDP datagram handling with its counters, batched
// once per pass.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/record.h"
#include "engine/unique_fd.h"
#include "stages/receive/receive.h"

namespace cefd::receive {

/// The engine behind a Receiver. Called once per lane (not per message), so virtual is fine.
class Engine {
public:
    virtual ~Engine() = default;
    /// The receive thread's loop; returns soon after `stop` is requested.
    virtual void run(std::stop_token stop) = 0;
    /// "io_uring" or "recvmmsg".
    [[nodiscard]] virtual const char* name() const noexcept = 0;
    /// The lane's UDP socket, or -1 when UDP is off.
    [[nodiscard]] virtual int udp_fd() const noexcept = 0;
};

/// What an io_uring completion or an epoll event points at (STYLE: user_data is a typed
/// completion). Connection (connection_table.h) starts with one.
struct Completion {
    enum class Kind : std::uint8_t { udp, listener, connection, tls };
    Kind kind;
};

/// UDP counts of one pass, added to the stats once by Intake::flush.
struct UdpBatch {
    std::uint64_t datagrams = 0;
    std::uint64_t bytes = 0;
    std::uint64_t oversize = 0;
    std::uint64_t ring_full = 0;
    std::uint64_t empty = 0;
    std::uint32_t kernel_drops = 0;  // the socket's running total (udp_socket_drops), set by flush
    /// Every datagram seen this pass, kept or not.
    [[nodiscard]] std::uint64_t seen() const noexcept {
        return datagrams + oversize + empty + ring_full;
    }
};

/// The lane number `receive.engine = "auto"`'s calibration opens its engine with (no real lane
/// has it). Its log lines name "engine calibration", not a lane, and it does not warn about
/// drops: the calibration counts them itself (EngineCost::lost), and a warning from it would use
/// up the once-per-10-s allowance of the call site that a real lane's first drop needs.
inline constexpr unsigned calibration_lane = ~0U;

/// The lane's output: config, limits, ring, stats. Owned by the engine; the receive thread only.
class Intake {
public:
    /// `lanes`: how many lanes the process runs (this lane's share of tcp_max_connections).
    Intake(const ReceiveConfig& config, unsigned lane, unsigned lanes, ByteRing& ring, ReceiveStats& stats,
           std::atomic<bool>& reload_requested);

    /// Copies one message into the lane ring. False when the ring is full.
    bool write(const MessageMeta& meta, std::string_view bytes) noexcept {
        return write_message_record(ring_, meta, bytes);
    }
    void notify() noexcept { ring_.notify(); }
    /// Free bytes in the lane ring, as this (the producing) thread sees them.
    [[nodiscard]] std::size_t ring_room() const noexcept { return ring_.capacity() - ring_.used_bytes(); }

    /// Handles one UDP datagram that arrived with `truncated` (MSG_TRUNC) or not.
    void on_datagram(const sockaddr* peer, std::string_view payload, bool truncated,
                     std::int64_t now_ns, UdpBatch& batch) noexcept;
    /// Adds a pass's UDP counts to the stats (and logs drops, rate-limited); resets `batch`.
    /// After a pass that saw datagrams, reads the kernel's drop count of `udp_fd` (-1: none): a
    /// socket can only have dropped while it was full, and the pass that follows reads it.
    void flush(UdpBatch& batch, int udp_fd) noexcept;

    /// True once per Receiver::request_reload(); the caller reloads.
    bool take_reload_request() noexcept;

    const ReceiveConfig config;
    const unsigned lane;
    const std::string name;  // "lane 2", or "engine calibration": for log lines
    ReceiveStats& stats;
    const std::uint32_t datagram_limit;  // datagram_bytes_max, or less if the ring cannot take it
    const std::uint32_t frame_limit;     // max_frame_bytes, likewise
    /// This lane's share of tcp_max_connections (at least 1). A lane can only evict its own
    /// connections, so a lane never holds more than its share: otherwise a flood taken by one
    /// lane would lock every sender the kernel hands to another lane out.
    const std::uint32_t connection_limit;
    const std::string udp_text;          // "127.0.0.1:5514" for log lines
    const std::string tcp_text;

private:
    ByteRing& ring_;
    std::atomic<bool>& reload_requested_;
    // The kernel's drop count of this Intake's socket when last read: the counter adds what it
    // grew by, modulo 2^32 (the kernel's count is 32 bits and wraps).
    std::uint32_t kernel_drops_seen_ = 0;
};

/// recvmmsg into buffers of the lane's datagram limit, each datagram handed to
/// Intake::on_datagram: the recvmmsg engine's UDP path, and every engine's stop drain.
class DatagramReader {
public:
    static constexpr unsigned batch_max = 64;
    /// Allocates batch_max buffers of intake.datagram_limit bytes (std::bad_alloc if it cannot).
    explicit DatagramReader(Intake& intake);
    /// One recvmmsg of at most `max` (<= batch_max) datagrams from `fd`, without waiting, each
    /// given to on_datagram with `now_ns` and `batch`. Returns how many were read, or -1 with
    /// errno set (EAGAIN: none were there).
    int read(int fd, unsigned max, std::int64_t now_ns, UdpBatch& batch) noexcept;

private:
    Intake& intake_;
    std::vector<char> payloads_;
    std::vector<sockaddr_storage> names_;
    std::vector<iovec> iovecs_;
    std::vector<mmsghdr> messages_;
};

/// The lane's UDP socket and TCP listener on config.listen (socket.h does the work; the error
/// names the address and the cause). `nonblocking` for epoll.
Result<UniqueFd> open_udp_socket(const Intake& intake);
Result<UniqueFd> open_tcp_listener(const Intake& intake, bool nonblocking);

/// Builds an engine of type E from `args` and opens it (binds its sockets).
template <class E, class... Args>
Result<std::unique_ptr<Engine>> open_engine(Args&&... args) {
    auto engine = std::make_unique<E>(std::forward<Args>(args)...);
    if (auto status = engine->open(); !status) return status.error();
    return std::unique_ptr<Engine>(std::move(engine));
}

/// Lane `lane`'s share of `total` connections over `lanes` lanes: the shares sum to `total`
/// (the first total % lanes lanes take one more), and none is below 1.
std::uint32_t connection_share(std::uint32_t total, unsigned lane, unsigned lanes) noexcept;

/// Engines. Each binds the lane's sockets; the caller has already decided which one to use.
Result<std::unique_ptr<Engine>> open_uring_engine(const ReceiveConfig& config, unsigned lane, unsigned lanes,
                                                  ByteRing& ring, ReceiveStats& stats,
                                                  std::atomic<bool>& reload_requested);
Result<std::unique_ptr<Engine>> open_recvmmsg_engine(const ReceiveConfig& config, unsigned lane, unsigned lanes,
                                                     ByteRing& ring, ReceiveStats& stats,
                                                     std::atomic<bool>& reload_requested);

/// Can this process use io_uring as the receive engine needs it (ring, opcodes, provided-buffer
/// ring, multishot recvmsg)? Run once per process and cached; the error says why not.
const Status& probe_uring();

}  // namespace cefd::receive
