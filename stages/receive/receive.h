// stages/receive/receive.h: a Receiver reads syslog messages from the network for one lane and
// writes each into the lane's ByteRing (engine/queue/byte_ring.h) as MessageMeta + bytes.
//
// Lifecycle: Pipeline::build opens one Receiver per lane (Receiver::open binds the lane's UDP
// socket, TCP listener and TLS listener, all with SO_REUSEPORT so the kernel spreads senders
// over lanes);
// the lane's receive thread calls run() until its stop_token is set. run() never allocates per
// message. Only the receive thread touches a Receiver after open(); stats() may be read from
// any thread, and request_reload() may be called from any thread (the receive thread does the
// reload at its next pass).
//
// Full ring: UDP datagrams are dropped and counted (`ring_full`); TCP and TLS stop reading the
// connection until the worker frees space (backpressure), so nothing on TCP or TLS is dropped.
// Every other drop has a counter too: see ReceiveStats.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "engine/config/config_errors.h"
#include "engine/metrics/metrics.h"
#include "engine/queue/byte_ring.h"
#include "engine/result.h"

namespace cefd {

namespace receive {
class Engine;  // engine.h: io_uring or recvmmsg, chosen by Receiver::open
}  // namespace receive

struct ReceiveConfig {
    /// Address every listener binds to. Loopback by default; collector VMs set "0.0.0.0" or "::".
    std::string listen = "127.0.0.1";
    /// UDP syslog port; 0 turns UDP off. Ports below 1024 need CAP_NET_BIND_SERVICE.
    std::uint16_t udp_port = 5514;
    /// TCP syslog port (RFC 6587 framing); 0 turns TCP off.
    std::uint16_t tcp_port = 5514;
    /// Largest datagram kept. Longer ones are counted as `oversize` and dropped.
    std::uint32_t datagram_bytes_max = 16'384;
    /// Provided receive buffers per lane (io_uring buffer ring). Must be a power of two.
    /// 256: fewer buffers are reused while still in cache and cost less per datagram than
    /// 1,024 (bench/README.md, "io_uring buffer count"); the socket buffer, not these, absorbs
    /// bursts, so running out only re-arms the receive (no_buffers), it loses nothing.
    std::uint32_t buffers_per_core = 256;
    /// SO_RCVBUF asked for each UDP socket. The kernel caps it at net.core.rmem_max.
    std::uint32_t rcvbuf_bytes = 8 * 1024 * 1024;
    /// Largest TCP frame. Longer frames are counted (`tcp_oversize_frames`) and cut.
    std::uint32_t max_frame_bytes = 65'536;
    /// Open TCP and TLS connections allowed in total (all lanes). Each lane holds its share
    /// (this / lanes, at least 1): a lane can evict only its own connections, so a flood that one
    /// lane took must not fill the others' room. When a lane's share is full, a new connection
    /// evicts the lane's longest-idle one, idle 1 s or more (`tcp_evicted`); with none to evict
    /// it is accepted and closed at once (`tcp_refused{reason="max_connections"}`).
    std::uint32_t tcp_max_connections = 4'096;
    /// Open TCP and TLS connections allowed from one sender address (all lanes; 0 = no cap).
    /// More are accepted and closed at once (`tcp_refused{reason="per_source"}`).
    std::uint32_t tcp_max_connections_per_source = 256;
    /// A TCP connection with no data for this long is closed.
    std::uint32_t tcp_idle_timeout_ms = 300'000;
    /// A TLS handshake not completed this long after the accept (or tcp_idle_timeout_ms, if
    /// shorter) is closed, however slowly its bytes trickle in (counted as a handshake failure
    /// and in `tls_handshake_timeouts`).
    std::uint32_t tls_handshake_timeout_ms = 10'000;
    /// At stop (SIGTERM), the longest each lane spends reading and delivering what its sockets
    /// still hold (datagrams queued in the UDP socket, bytes in accepted connections) before it
    /// closes them. 0: no drain. What is still there when it ends is counted
    /// (`udp_unread_at_stop`, `tcp_unread_at_stop_bytes`; counting the datagrams takes at most
    /// 0.2 s more) and logged.
    std::uint32_t drain_timeout_ms = 1'000;
    enum class Engine : std::uint8_t { automatic, io_uring, recvmmsg };
    /// "auto" uses recvmmsg/epoll: measured cheaper than io_uring here (bench/README.md).
    /// "io_uring" fails to start if io_uring is unusable. The start-up line names the engine.
    Engine engine = Engine::automatic;
    enum class UdpSpread : std::uint8_t { content, flow };
    /// How the kernel shares UDP datagrams among the lanes' sockets. "flow": the kernel's
    /// SO_REUSEPORT hash of the sender's address and port, so each sender stays on one lane
    /// however loud it is. "content": a hash of each datagram's last bytes picks the lane
    /// (socket.h, attach_content_spread), so one loud sender (a relay) fills every lane and a
    /// repeated message meets its first copy whatever port it came from. "flow" is the default:
    /// two busy lanes cost more CPU per event than one (bench/README.md, "UDP spread"). The
    /// start-up line says which is in force.
    UdpSpread udp_spread = UdpSpread::flow;
    /// TLS syslog port (RFC 5425; RFC 6587 framing inside TLS). The TLS listener exists only
    /// when tls_cert_file is set. Must differ from tcp_port.
    std::uint16_t tls_port = 6514;
    /// Server certificate chain (PEM, leaf first). Setting it turns TLS on. Reloaded on SIGHUP.
    std::string tls_cert_file;
    /// Private key of tls_cert_file (PEM). Refused if other users can read it (chmod 600).
    std::string tls_key_file;
    /// CA bundle (PEM) for client certificates. Set: every client must present a certificate
    /// that chains to it (mutual TLS). Empty: clients are not asked for one.
    std::string tls_client_ca_file;

    void validate(ConfigErrors& errors) const;
};

/// One set per lane; the receive thread is the only writer.
struct ReceiveStats {
    Counter datagrams{0};       // UDP datagrams written to the ring
    Counter bytes{0};           // message bytes written to the ring (UDP and TCP)
    Counter oversize{0};        // datagrams over datagram_bytes_max (MSG_TRUNC), dropped
    Counter no_buffers{0};      // -ENOBUFS: the provided-buffer ring was empty; multishot re-armed
    Counter ring_full{0};       // UDP datagrams dropped because the lane ring was full
    Counter kernel_drops{0};    // SO_MEMINFO drops: dropped by the kernel before we could read them
    Counter bad_completions{0};  // io_uring recvmsg completions too short to hold a datagram: dropped
    Counter tcp_accepted{0};    // TCP connections accepted
    Counter tcp_rejected{0};    // TCP connections closed at once: the sum of the two below
    Counter tcp_refused_max_connections{0};  // total full and nothing on this lane to evict
    Counter tcp_refused_per_source{0};       // over tcp_max_connections_per_source
    Counter tcp_evicted{0};     // longest-idle connections closed to make room for a new one
    Counter tcp_accept_errors{0};  // accept failed (EMFILE...: the listener rests 100 ms)
    Counter tcp_closed{0};      // TCP connections closed (peer, idle, error)
    Counter tcp_frames{0};      // TCP frames written to the ring
    Counter tcp_oversize_frames{0};  // TCP frames over max_frame_bytes (cut, counted)
    Counter tcp_bad_frames{0};  // octet count over 16 MiB (9-19 digits): to the next LF
    Counter tcp_skipped_bytes{0};  // bytes skipped for tcp_bad_frames
    Counter tcp_cut_bytes{0};  // the rest of tcp_oversize_frames, past max_frame_bytes: dropped
    Counter tcp_unread_at_stop_bytes{0};  // left in connections when the stop's drain ended
    Counter udp_unread_at_stop{0};        // datagrams left in the UDP socket when the stop's drain ended
    Counter drained_at_stop{0};           // datagrams and frames the stop's drain read and delivered
    Counter tcp_idle_closed{0}; // connections closed by the idle timeout
    Counter empty{0};           // empty datagrams / TCP frames (health probes): not written
    Counter tcp_partial_frames{0};  // octet-counted frame cut short by the peer closing: kept, flagged
    // TLS connections also count in tcp_rejected, tcp_refused_*, tcp_evicted, tcp_accept_errors,
    // tcp_idle_closed, tcp_oversize_frames, tcp_bad_frames, tcp_skipped_bytes, tcp_cut_bytes,
    // tcp_partial_frames, empty and bytes.
    Counter tls_accepted{0};    // TLS handshakes completed
    Counter tls_handshake_failures{0};  // closed before the handshake completed (reason logged)
    Counter tls_handshake_timeouts{0};  // of those: not done within tls_handshake_timeout_ms
    Counter tls_frames{0};      // frames received over TLS, written to the ring
    Counter tls_closed{0};      // TLS connections closed after a completed handshake
    Counter tls_reloads{0};     // certificate reloads that took effect
    Counter tls_reload_failures{0};  // reloads refused (the old certificate stays; reason logged)
};

class Receiver {
public:
    /// Binds this lane's sockets. `lane` numbers lanes from 0. Fails with a message naming the
    /// address and the cause (port in use, permission, io_uring unavailable with engine=io_uring).
    /// `lanes` is how many lanes share the port: with udp_spread = "content" and more than one,
    /// each lane's UDP socket carries the spread program over that many sockets.
    static Result<std::unique_ptr<Receiver>> open(const ReceiveConfig& config, unsigned lane,
                                                  ByteRing& ring, unsigned lanes = 1);
    ~Receiver();
    Receiver(const Receiver&) = delete;
    Receiver& operator=(const Receiver&) = delete;

    /// The receive thread's body: returns soon after `stop` is requested (within about 100 ms,
    /// plus the stop's drain: drain_timeout_ms and 0.2 s to count what is left; io_uring waits
    /// up to 1 s more for its cancelled requests, normally none: connection_table.h
    /// drain_at_stop).
    void run(std::stop_token stop);

    /// Asks the receive thread to reload the TLS certificate, key and client CA at its next pass
    /// (within about 50 ms). Any thread may call it (the lead's SIGHUP handler does). Existing
    /// connections keep the old certificate; a reload that fails keeps it too and logs why.
    void request_reload() noexcept;

    [[nodiscard]] const ReceiveStats& stats() const noexcept { return stats_; }
    /// Registers every counter with a lane="N" label.
    void register_metrics(MetricsRegistry& registry) const;
    /// "io_uring" or "recvmmsg": the engine actually in use.
    [[nodiscard]] const char* engine_name() const noexcept;

private:
    explicit Receiver(unsigned lane);  // in receive.cpp, where Engine is complete
    /// Applies udp_spread to this lane's UDP socket, once the engine has bound it.
    void spread_udp(const ReceiveConfig& config, unsigned lanes);
    unsigned lane_;
    ReceiveStats stats_;
    std::atomic<bool> reload_requested_{false};  // set by request_reload, taken by the engine
    // Last, so it is destroyed first: it writes stats_ and reads reload_requested_.
    std::unique_ptr<receive::Engine> engine_;
};

}  // namespace cefd
