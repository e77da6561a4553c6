#include "stages/receive/receive.h"

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "engine/log.h"
#include "stages/receive/engine.h"
#include "stages/receive/engine_choice.h"
#include "stages/receive/socket.h"
#include "stages/receive/tcp_framing.h"
#include "stages/receive/tls.h"

namespace cefd {
namespace {

// The TLS files are read when the receiver opens; check-config says which one is missing.
void check_readable_file(ConfigErrors& errors, const char* key, const std::string& path) {
    std::FILE* file = std::fopen(path.c_str(), "rb");
    if (file == nullptr) {
        errors.add(key, "cannot read " + path + ": " + std::strerror(errno));
        return;
    }
    std::fclose(file);
}

}  // namespace

void ReceiveConfig::validate(ConfigErrors& errors) const {
    if (receive::ListenAddress::parse(listen, 0).ok() == false)
        errors.add("receive.listen", "\"" + listen + "\" is not an IPv4 or IPv6 address");
    const bool tls = !tls_cert_file.empty();
    errors.check("receive", udp_port != 0 || tcp_port != 0 || tls,
                 "udp_port and tcp_port are both 0 and TLS is off: nothing to receive");
    if (tls) {
        errors.check("receive.tls_port", tls_port != 0, "must not be 0 when tls_cert_file is set");
        errors.check("receive.tls_port", tls_port != tcp_port,
                     "must differ from tcp_port (both are TCP listeners)");
        check_readable_file(errors, "receive.tls_cert_file", tls_cert_file);
        if (tls_key_file.empty()) {
            errors.add("receive.tls_key_file", "must be set when tls_cert_file is set");
        } else if (auto status = receive::check_private_key_file(tls_key_file); !status) {
            errors.add("receive.tls_key_file", status.error().message);
        } else {
            check_readable_file(errors, "receive.tls_key_file", tls_key_file);
        }
        if (!tls_client_ca_file.empty())
            check_readable_file(errors, "receive.tls_client_ca_file", tls_client_ca_file);
    } else {
        errors.check("receive.tls_key_file", tls_key_file.empty(),
                     "is set but tls_cert_file is not: set both to turn TLS on");
        errors.check("receive.tls_client_ca_file", tls_client_ca_file.empty(),
                     "is set but tls_cert_file is not: set both to turn TLS on");
    }
    // 2048: what RFC 5426 asks receivers to accept. 65507: the largest IPv4 UDP payload.
    errors.check_range<std::uint32_t>("receive.datagram_bytes_max", datagram_bytes_max, 2'048,
                                      65'507);
    errors.check("receive.buffers_per_core", std::has_single_bit(buffers_per_core),
                 "must be a power of two");
    // 32768: the kernel's limit on provided-buffer ring entries.
    errors.check_range<std::uint32_t>("receive.buffers_per_core", buffers_per_core, 16, 32'768);
    errors.check_range<std::uint32_t>("receive.rcvbuf_bytes", rcvbuf_bytes, 65'536,
                                      1024 * 1024 * 1024);
    errors.check_range<std::uint32_t>("receive.max_frame_bytes", max_frame_bytes, 2'048,
                                      receive::TcpFramer::frame_bytes_ceiling);
    errors.check_range<std::uint32_t>("receive.tcp_max_connections", tcp_max_connections, 1,
                                      1'000'000);
    errors.check_range<std::uint32_t>("receive.tcp_max_connections_per_source",
                                      tcp_max_connections_per_source, 0, 1'000'000);
    errors.check_range<std::uint32_t>("receive.tcp_idle_timeout_ms", tcp_idle_timeout_ms, 10,
                                      86'400'000);
    errors.check_range<std::uint32_t>("receive.tls_handshake_timeout_ms",
                                      tls_handshake_timeout_ms, 10, 3'600'000);
    errors.check_range<std::uint32_t>("receive.drain_timeout_ms", drain_timeout_ms, 0, 60'000);
}

Receiver::Receiver(unsigned lane) : lane_(lane) {}

Receiver::~Receiver() = default;

Result<std::unique_ptr<Receiver>> Receiver::open(const ReceiveConfig& config, unsigned lane,
                                                 ByteRing& ring, unsigned lanes) {
    // engine = "auto": the engine measured cheaper per datagram on this machine at start
    // (engine_choice.h), the same for every lane. A forced io_uring that cannot run fails here.
    bool use_uring = config.engine == ReceiveConfig::Engine::io_uring;
    const char* why = "configured";
    if (config.engine == ReceiveConfig::Engine::automatic) {
        const receive::EngineChoice& choice = receive::automatic_engine(config);
        use_uring = choice.engine == ReceiveConfig::Engine::io_uring;
        why = choice.why.c_str();
    } else if (use_uring) {
        const Status& probe = receive::probe_uring();
        if (!probe.ok())
            return Error{Errc::uring_unavailable, probe.error().sys,
                         "receive: engine = \"io_uring\" but io_uring is unusable here: " +
                             probe.error().message +
                             ". Fix that, or set receive.engine = \"recvmmsg\" or \"auto\""};
    }
    auto receiver = std::unique_ptr<Receiver>(new Receiver(lane));
    auto engine =
        use_uring
            ? receive::open_uring_engine(config, lane, lanes, ring, receiver->stats_, receiver->reload_requested_)
            : receive::open_recvmmsg_engine(config, lane, lanes, ring, receiver->stats_, receiver->reload_requested_);
    if (!engine) return engine.error();
    receiver->engine_ = std::move(engine).value();
    if (lane == 0) CEFD_LOG(info, "receive engine: %s (%s)", receiver->engine_name(), why);
    if (lane == 0 && lanes > 1 && (config.tcp_port != 0 || !config.tls_cert_file.empty()))
        CEFD_LOG(info,
                 "receive: each of %u lanes holds up to %u TCP/TLS connections (its share of "
                 "receive.tcp_max_connections = %u)",
                 lanes, receive::connection_share(config.tcp_max_connections, 0, lanes), config.tcp_max_connections);
    receiver->spread_udp(config, lanes);
    return receiver;
}

void Receiver::spread_udp(const ReceiveConfig& config, unsigned lanes) {
    const int fd = engine_->udp_fd();
    if (fd < 0 || lanes < 2) return;  // one socket: nothing to share out
    if (config.udp_spread == ReceiveConfig::UdpSpread::flow) {
        if (lane_ == 0)
            CEFD_LOG(info, "receive: UDP spread over %u lanes by sender address and port "
                           "(udp_spread = \"flow\")", lanes);
        return;
    }
    // Every lane attaches the same program (the group keeps the last), so the group has it
    // whichever lane binds last. Until every lane has bound, the program's index may name a
    // socket not there yet; the kernel then uses its flow hash for that datagram.
    const Status attached = receive::attach_content_spread(fd, lanes);
    if (!attached) {
        if (lane_ == 0)
            CEFD_LOG(warn, "receive: udp_spread = \"content\" unavailable (%s); UDP is spread by "
                           "sender address and port instead", attached.error().describe().c_str());
        return;
    }
    if (lane_ == 0)
        CEFD_LOG(info, "receive: UDP spread over %u lanes by message content (udp_spread = "
                       "\"content\")", lanes);
}

void Receiver::run(std::stop_token stop) { engine_->run(std::move(stop)); }

void Receiver::request_reload() noexcept {
    reload_requested_.store(true, std::memory_order_release);
}

const char* Receiver::engine_name() const noexcept { return engine_->name(); }

void Receiver::register_metrics(MetricsRegistry& registry) const {
    const std::string labels = "lane=\"" + std::to_string(lane_) + "\"";
    struct Entry {
        const char* name;
        const char* help;
        const Counter* counter;
    };
    const Entry entries[] = {
        {"receive_datagrams_total", "UDP datagrams written to the lane ring", &stats_.datagrams},
        {"receive_bytes_total", "Message bytes written to the lane ring (UDP and TCP)", &stats_.bytes},
        {"receive_oversize_total", "UDP datagrams over datagram_bytes_max, dropped", &stats_.oversize},
        {"receive_no_buffers_total", "io_uring provided-buffer ring empty (-ENOBUFS), re-armed", &stats_.no_buffers},
        {"receive_ring_full_total", "UDP datagrams dropped because the lane ring was full", &stats_.ring_full},
        {"receive_kernel_drops_total", "UDP datagrams the kernel dropped: socket buffer full (SO_MEMINFO)",
         &stats_.kernel_drops},
        {"receive_tcp_accepted_total", "TCP connections accepted", &stats_.tcp_accepted},
        {"receive_tcp_rejected_total",
         "TCP and TLS connections closed at once (every receive_tcp_refused_total reason)", &stats_.tcp_rejected},
        {"receive_tcp_evicted_total", "Longest-idle connections closed to make room: tcp_max_connections was full",
         &stats_.tcp_evicted},
        {"receive_tcp_accept_errors_total", "accept() failures (EMFILE, ENFILE...: the listener rests 100 ms)",
         &stats_.tcp_accept_errors},
        {"receive_tcp_skipped_bytes_total", "TCP and TLS bytes skipped to resynchronise after a bad octet count",
         &stats_.tcp_skipped_bytes},
        {"receive_tls_handshake_timeouts_total", "TLS handshakes not done within tls_handshake_timeout_ms, closed",
         &stats_.tls_handshake_timeouts},
        {"receive_tcp_closed_total", "TCP connections closed (peer, idle, error)", &stats_.tcp_closed},
        {"receive_tcp_frames_total", "TCP frames written to the lane ring", &stats_.tcp_frames},
        {"receive_tcp_oversize_frames_total", "TCP frames over max_frame_bytes, cut", &stats_.tcp_oversize_frames},
        {"receive_tcp_cut_bytes_total", "TCP and TLS bytes past max_frame_bytes dropped from cut frames",
         &stats_.tcp_cut_bytes},
        {"receive_tcp_unread_at_stop_bytes_total",
         "TCP and TLS bytes left unread in connections when cefd stopped: not delivered",
         &stats_.tcp_unread_at_stop_bytes},
        {"receive_bad_completions_total",
         "io_uring recvmsg completions too short to hold a datagram (io_uring_recvmsg_validate failed): dropped",
         &stats_.bad_completions},
        {"receive_udp_unread_at_stop_total",
         "UDP datagrams still queued in the socket when the stop's drain ended: not delivered",
         &stats_.udp_unread_at_stop},
        {"receive_drained_at_stop_total",
         "Datagrams and TCP/TLS frames read and delivered by the stop's drain (receive.drain_timeout_ms)",
         &stats_.drained_at_stop},
        {"receive_tcp_bad_frames_total", "Octet counts over 16 MiB (9-19 digits): the stream skipped to the next LF",
         &stats_.tcp_bad_frames},
        {"receive_tcp_idle_closed_total", "TCP connections closed by the idle timeout", &stats_.tcp_idle_closed},
        {"receive_empty_total", "Empty datagrams and TCP frames, not written", &stats_.empty},
        {"receive_tcp_partial_frames_total", "Octet-counted frames cut short by the peer closing, kept and flagged",
         &stats_.tcp_partial_frames},
        {"receive_tls_accepted_total", "TLS handshakes completed", &stats_.tls_accepted},
        {"receive_tls_handshake_failures_total", "TLS connections closed before the handshake completed",
         &stats_.tls_handshake_failures},
        {"receive_tls_frames_total", "TLS frames written to the lane ring", &stats_.tls_frames},
        {"receive_tls_closed_total", "TLS connections closed after a completed handshake", &stats_.tls_closed},
        {"receive_tls_reloads_total", "TLS certificate reloads that took effect", &stats_.tls_reloads},
        {"receive_tls_reload_failures_total", "TLS certificate reloads refused (the old certificate stays)",
         &stats_.tls_reload_failures},
    };
    for (const Entry& entry : entries) registry.add(entry.name, entry.help, labels, entry.counter);
    registry.add_gauge("receive_engine_info", "The receive engine this lane runs (the label), always 1",
                       labels + ",engine=\"" + engine_name() + "\"", [] { return 1.0; });
    const char* refused_help = "TCP and TLS connections refused, by reason";
    registry.add("receive_tcp_refused_total", refused_help, labels + ",reason=\"max_connections\"",
                 &stats_.tcp_refused_max_connections);
    registry.add("receive_tcp_refused_total", refused_help, labels + ",reason=\"per_source\"",
                 &stats_.tcp_refused_per_source);
}

}  // namespace cefd
