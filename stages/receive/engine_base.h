// stages/receive/engine_base.h: what both receive engines share (Receiver::Impl).
//
// An engine (uring_engine.cpp or epoll_engine.cpp) owns the lane's sockets and its event loop;
// this base owns everything that does not depend on how bytes arrive: the limits derived from
// the config, writing a message into the lane ring, per-connection TCP state and framing, the
// process-wide TCP connection count, and the lane's TLS server (tls.h), which both engines drive
// the same way. Only the lane's receive thread calls into it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

#include "engine/record.h"
#include "stages/receive/receive.h"
#include "stages/receive/socket.h"
#include "stages/receive/tcp_framing.h"

namespace cefd {

/// The engine behind a Receiver. run() and name() are virtual: called once per lane, not per
/// message.
class Receiver::Impl {
public:
    virtual ~Impl() = default;
    virtual void run(std::stop_token stop) = 0;
    [[nodiscard]] virtual const char* name() const noexcept = 0;

    ReceiveStats* stats = nullptr;  // the owning Receiver's; set by Receiver::open
    /// Set by Receiver::request_reload (any thread); the receive thread clears it and reloads.
    std::atomic<bool> reload_requested{false};
};

}  // namespace cefd

namespace cefd::receive {

/// What an io_uring completion or an epoll event points at (STYLE: user_data is a typed
/// completion). Connection derives from it.
struct Completion {
    enum class Kind : std::uint8_t { udp, listener, connection, tls };
    Kind kind;
};

/// One accepted TCP connection. Its read buffer is allocated when it opens (never per message)
/// and holds at most one partial frame plus what the last read brought.
struct Connection : Completion {
    Connection(UniqueFd socket, const SourceAddress& peer, std::uint32_t frame_bytes_max,
               std::int64_t now_ns, Transport over = Transport::tcp);

    UniqueFd fd;
    SourceAddress source;
    TcpFramer framer;
    std::unique_ptr<char[]> buffer;
    std::size_t capacity = 0;
    std::size_t begin = 0;  // first byte not yet framed
    std::size_t end = 0;    // one past the last byte read
    std::int64_t last_activity_ns = 0;
    std::size_t index = 0;  // position in the engine's connection table
    Transport transport;    // tcp or tls: stamped on every frame, picks the frame counter
    bool paused = false;    // the lane ring was full: not reading until the frames fit
    bool eof = false;       // the peer closed (or reset); deliver what is left, then close
    bool closing = false;   // idle close requested; io_uring waits for the in-flight recv
    bool in_flight = false; // io_uring: a recv is submitted

    [[nodiscard]] std::size_t room() const noexcept { return capacity - end; }
};

class TlsServer;

class EngineBase : public Receiver::Impl {
public:
    EngineBase(const ReceiveConfig& config, unsigned lane, ByteRing& ring);
    ~EngineBase() override;

protected:
    friend class TlsServer;  // frames and counts through the helpers below

    /// Opens the lane's TLS listener when tls_cert_file is set (engines call it from open()).
    Status open_tls();
    /// Once per pass: reloads the TLS certificate if Receiver::request_reload asked for it.
    void reload_if_requested();

    /// Copies one message into the lane ring. False when the ring is full.
    bool write_message(const MessageMeta& meta, std::string_view bytes) noexcept {
        const auto room = ring_.reserve(sizeof(MessageMeta) + bytes.size());
        if (room.empty()) return false;
        std::memcpy(room.data(), &meta, sizeof meta);
        std::memcpy(room.data() + sizeof meta, bytes.data(), bytes.size());
        ring_.commit(sizeof meta + bytes.size());
        return true;
    }

    /// Handles one UDP datagram that arrived with `truncated` (MSG_TRUNC) or not. Counts into
    /// the caller's batch, which it adds to the stats once per pass.
    struct UdpBatch {
        std::uint64_t datagrams = 0;
        std::uint64_t bytes = 0;
        std::uint64_t oversize = 0;
        std::uint64_t ring_full = 0;
        std::uint64_t empty = 0;
        std::uint32_t kernel_drops = 0;
    };
    void on_datagram(const sockaddr* peer, std::string_view payload, bool truncated,
                     std::int64_t now_ns, UdpBatch& batch) noexcept;
    void flush(const UdpBatch& batch) noexcept;

    /// Frames and delivers what `connection` has buffered. Returns blocked when the ring filled
    /// (the connection must pause) and bad_frame when it must be closed.
    FrameStatus deliver_frames(Connection& connection, std::int64_t now_ns) noexcept;

    /// Process-wide count of open TCP connections (tcp_max_connections is a total).
    static bool try_reserve_connection(std::uint32_t limit) noexcept;
    static void release_connection() noexcept;

    ReceiveConfig config_;
    unsigned lane_;
    ByteRing& ring_;
    std::uint32_t datagram_limit_;  // datagram_bytes_max, or less if the ring cannot take it
    std::uint32_t frame_limit_;     // max_frame_bytes, likewise
    std::string udp_text_;          // "127.0.0.1:5514" for log lines
    std::string tcp_text_;
    std::unique_ptr<TlsServer> tls_;  // null unless tls_cert_file is set
};

}  // namespace cefd::receive

namespace cefd::receive {

/// Engines. Each binds the lane's sockets; the caller has already decided which one to use.
Result<std::unique_ptr<Receiver::Impl>> open_uring_engine(const ReceiveConfig& config,
                                                          unsigned lane, ByteRing& ring);
Result<std::unique_ptr<Receiver::Impl>> open_epoll_engine(const ReceiveConfig& config,
                                                          unsigned lane, ByteRing& ring);

/// Can this process use io_uring as the receive engine needs it (ring, opcodes, provided-buffer
/// ring, multishot recvmsg)? Run once per process and cached; the error says why not.
const Status& probe_uring();

}  // namespace cefd::receive
