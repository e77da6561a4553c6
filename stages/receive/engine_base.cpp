#include "stages/receive/engine_base.h"

#include <cstring>

#include "engine/log.h"
#include "stages/receive/tls.h"

namespace cefd::receive {
namespace {

// Open TCP connections over all lanes of the process.
std::atomic<std::uint32_t> open_connections{0};

std::uint32_t ring_message_bytes_max(const ByteRing& ring) {
    return static_cast<std::uint32_t>(ring.max_record_bytes() - sizeof(MessageMeta));
}

std::string_view strip_line_end(std::string_view bytes) noexcept {
    if (!bytes.empty() && bytes.back() == '\n') bytes.remove_suffix(1);
    if (!bytes.empty() && bytes.back() == '\r') bytes.remove_suffix(1);
    return bytes;
}

}  // namespace

Connection::Connection(UniqueFd socket, const SourceAddress& peer, std::uint32_t frame_bytes_max,
                       std::int64_t now_ns, Transport over)
    : Completion{Kind::connection},
      fd(std::move(socket)),
      source(peer),
      framer(frame_bytes_max),
      buffer(new char[TcpFramer::buffer_bytes_min(frame_bytes_max)]),
      capacity(TcpFramer::buffer_bytes_min(frame_bytes_max)),
      last_activity_ns(now_ns),
      transport(over) {}

EngineBase::EngineBase(const ReceiveConfig& config, unsigned lane, ByteRing& ring)
    : config_(config),
      lane_(lane),
      ring_(ring),
      datagram_limit_(std::min(config.datagram_bytes_max, ring_message_bytes_max(ring))),
      frame_limit_(std::min(config.max_frame_bytes, ring_message_bytes_max(ring))),
      udp_text_(config.listen + ":" + std::to_string(config.udp_port)),
      tcp_text_(config.listen + ":" + std::to_string(config.tcp_port)) {
    if (datagram_limit_ < config.datagram_bytes_max || frame_limit_ < config.max_frame_bytes)
        CEFD_LOG(warn,
                 "receive: lane %u ring of %zu bytes takes messages up to %u bytes; datagrams and "
                 "TCP frames are limited to that (raise runtime.queue_slots)",
                 lane, ring.capacity(), ring_message_bytes_max(ring));
}

EngineBase::~EngineBase() = default;

Status EngineBase::open_tls() {
    if (config_.tls_cert_file.empty()) return ok_status();
    auto context = TlsContext::load(config_);
    if (!context) return context.error();
    tls_ = std::make_unique<TlsServer>(*this, std::move(context).value());
    return tls_->open();
}

void EngineBase::reload_if_requested() {
    // A relaxed load first: this runs every pass and a reload is rare.
    if (!reload_requested.load(std::memory_order_relaxed)) return;
    if (!reload_requested.exchange(false, std::memory_order_acquire)) return;
    if (tls_ == nullptr) {
        CEFD_LOG(debug, "receive: lane %u reload requested; TLS is off, nothing to reload", lane_);
        return;
    }
    tls_->reload();
}

void EngineBase::on_datagram(const sockaddr* peer, std::string_view payload, bool truncated,
                             std::int64_t now_ns, UdpBatch& batch) noexcept {
    if (truncated || payload.size() > datagram_limit_) {
        ++batch.oversize;
        return;
    }
    payload = strip_line_end(payload);
    if (payload.empty()) {
        ++batch.empty;
        return;
    }
    MessageMeta meta;
    meta.receive_time_ns = now_ns;
    meta.source = SourceAddress::from_sockaddr(peer);
    meta.length = static_cast<std::uint32_t>(payload.size());
    meta.transport = Transport::udp;
    if (!write_message(meta, payload)) {
        ++batch.ring_full;
        return;
    }
    ++batch.datagrams;
    batch.bytes += payload.size();
}

void EngineBase::flush(const UdpBatch& batch) noexcept {
    ReceiveStats& s = *stats;
    if (batch.datagrams != 0) {
        bump(s.datagrams, batch.datagrams);
        bump(s.bytes, batch.bytes);
    }
    if (batch.empty != 0) bump(s.empty, batch.empty);
    if (batch.oversize != 0) {
        bump(s.oversize, batch.oversize);
        CEFD_LOG_EVERY(10, warn,
                       "receive: lane %u dropped UDP datagrams over %u bytes "
                       "(receive_oversize_total=%llu; raise receive.datagram_bytes_max)",
                       lane_, datagram_limit_,
                       static_cast<unsigned long long>(read(s.oversize)));
    }
    if (batch.ring_full != 0) {
        bump(s.ring_full, batch.ring_full);
        CEFD_LOG_EVERY(10, warn,
                       "receive: lane %u ring full, UDP datagrams dropped "
                       "(receive_ring_full_total=%llu): the worker is behind",
                       lane_, static_cast<unsigned long long>(read(s.ring_full)));
    }
    // SO_RXQ_OVFL reports the socket's running total, so the counter follows the largest seen.
    if (batch.kernel_drops > read(s.kernel_drops)) {
        s.kernel_drops.store(batch.kernel_drops, std::memory_order_relaxed);
        CEFD_LOG_EVERY(10, warn,
                       "receive: lane %u kernel dropped UDP datagrams before they were read "
                       "(receive_kernel_drops_total=%u): raise receive.rcvbuf_bytes or add lanes",
                       lane_, batch.kernel_drops);
    }
    if (batch.datagrams != 0) ring_.notify();
}

FrameStatus EngineBase::deliver_frames(Connection& connection, std::int64_t now_ns) noexcept {
    std::uint64_t frames = 0;
    std::uint64_t bytes = 0;
    std::uint64_t oversize = 0;
    std::uint64_t partial = 0;
    std::uint64_t empty = 0;
    auto deliver = [&](std::string_view frame, Cut cut) -> bool {
        if (frame.empty()) {
            ++empty;
            return true;
        }
        MessageMeta meta;
        meta.receive_time_ns = now_ns;
        meta.source = connection.source;
        meta.length = static_cast<std::uint32_t>(frame.size());
        meta.transport = connection.transport;
        meta.flags = cut == Cut::none ? 0 : message_truncated;
        if (!write_message(meta, frame)) return false;
        ++frames;
        bytes += frame.size();
        oversize += cut == Cut::oversize ? 1 : 0;
        partial += cut == Cut::partial_at_eof ? 1 : 0;
        return true;
    };
    std::string_view pending(connection.buffer.get() + connection.begin,
                             connection.end - connection.begin);
    const FrameStatus status = connection.framer.drain(pending, connection.eof, deliver);
    connection.begin = static_cast<std::size_t>(pending.data() - connection.buffer.get());
    if (connection.begin == connection.end) {
        connection.begin = connection.end = 0;
    } else if (status == FrameStatus::need_more && connection.begin != 0) {
        // Only a partial frame is left: move it to the front so the next read has room.
        std::memmove(connection.buffer.get(), pending.data(), pending.size());
        connection.begin = 0;
        connection.end = pending.size();
    }

    ReceiveStats& s = *stats;
    const bool tls = connection.transport == Transport::tls;
    const char* kind = tls ? "TLS" : "TCP";
    if (frames != 0) {
        bump(tls ? s.tls_frames : s.tcp_frames, frames);
        bump(s.bytes, bytes);
        ring_.notify();
    }
    if (empty != 0) bump(s.empty, empty);
    if (oversize != 0) {
        bump(s.tcp_oversize_frames, oversize);
        CEFD_LOG_EVERY(10, warn,
                       "receive: lane %u %s frame over %u bytes from %s cut to that size "
                       "(receive_tcp_oversize_frames_total=%llu)",
                       lane_, kind, frame_limit_, connection.source.to_string().c_str(),
                       static_cast<unsigned long long>(read(s.tcp_oversize_frames)));
    }
    if (partial != 0) {
        bump(s.tcp_partial_frames, partial);
        CEFD_LOG_EVERY(10, warn,
                       "receive: lane %u %s peer %s closed inside an octet-counted frame; kept "
                       "the part received, flagged truncated",
                       lane_, kind, connection.source.to_string().c_str());
    }
    if (status == FrameStatus::bad_frame) {
        bump(s.tcp_bad_frames);
        CEFD_LOG_EVERY(10, warn,
                       "receive: lane %u closing %s connection from %s: octet count longer than "
                       "9 digits, the stream is not RFC 6587 framing",
                       lane_, kind, connection.source.to_string().c_str());
    }
    return status;
}

bool EngineBase::try_reserve_connection(std::uint32_t limit) noexcept {
    std::uint32_t current = open_connections.load(std::memory_order_relaxed);
    // Bounded by the number of lanes racing for the last slots.
    while (current < limit) {
        if (open_connections.compare_exchange_weak(current, current + 1, std::memory_order_relaxed))
            return true;
    }
    return false;
}

void EngineBase::release_connection() noexcept {
    open_connections.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace cefd::receive
