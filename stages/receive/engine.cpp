#include "stages/receive/engine.h"

#include <algorithm>
#include <cstring>

#include "engine/log.h"
#include "stages/receive/socket.h"

namespace cefd::receive {

std::uint32_t connection_share(std::uint32_t total, unsigned lane, unsigned lanes) noexcept {
    lanes = std::max(lanes, 1U);
    const std::uint32_t share = total / lanes + (lane < total % lanes ? 1U : 0U);
    return std::max<std::uint32_t>(share, 1);
}

namespace {

std::string_view strip_line_end(std::string_view bytes) noexcept {
    if (!bytes.empty() && bytes.back() == '\n') bytes.remove_suffix(1);
    if (!bytes.empty() && bytes.back() == '\r') bytes.remove_suffix(1);
    return bytes;
}

}  // namespace

Intake::Intake(const ReceiveConfig& receive, unsigned lane_index, unsigned lanes, ByteRing& ring,
               ReceiveStats& lane_stats, std::atomic<bool>& reload_requested)
    : config(receive),
      lane(lane_index),
      name(lane_index == calibration_lane ? "engine calibration" : "lane " + std::to_string(lane_index)),
      stats(lane_stats),
      datagram_limit(std::min(receive.datagram_bytes_max, message_bytes_max(ring))),
      frame_limit(std::min(receive.max_frame_bytes, message_bytes_max(ring))),
      connection_limit(connection_share(receive.tcp_max_connections, lane_index, lanes)),
      udp_text(receive.listen + ":" + std::to_string(receive.udp_port)),
      tcp_text(receive.listen + ":" + std::to_string(receive.tcp_port)),
      ring_(ring),
      reload_requested_(reload_requested) {
    if (datagram_limit < receive.datagram_bytes_max || frame_limit < receive.max_frame_bytes)
        CEFD_LOG(warn,
                 "receive: %s ring of %zu bytes takes messages up to %u bytes; datagrams and "
                 "TCP frames are limited to that (raise runtime.ring_bytes)",
                 name.c_str(), ring.capacity(), message_bytes_max(ring));
}

Result<UniqueFd> open_udp_socket(const Intake& intake) {
    auto address = ListenAddress::parse(intake.config.listen, intake.config.udp_port);
    if (!address) return address.error();
    return open_udp_socket(address.value(), intake.config.rcvbuf_bytes, intake.udp_text);
}

Result<UniqueFd> open_tcp_listener(const Intake& intake, bool nonblocking) {
    auto address = ListenAddress::parse(intake.config.listen, intake.config.tcp_port);
    if (!address) return address.error();
    return open_tcp_listener(address.value(), nonblocking, intake.tcp_text);
}

bool Intake::take_reload_request() noexcept {
    // A relaxed load first: this runs every pass and a reload is rare.
    if (!reload_requested_.load(std::memory_order_relaxed)) return false;
    return reload_requested_.exchange(false, std::memory_order_acquire);
}

void Intake::on_datagram(const sockaddr* peer, std::string_view payload, bool truncated,
                         std::int64_t now_ns, UdpBatch& batch) noexcept {
    if (truncated || payload.size() > datagram_limit) {
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
    meta.transport = Transport::udp;
    if (!write(meta, payload)) {
        ++batch.ring_full;
        return;
    }
    ++batch.datagrams;
    batch.bytes += payload.size();
}

DatagramReader::DatagramReader(Intake& intake)
    : intake_(intake),
      payloads_(std::size_t{batch_max} * intake.datagram_limit),
      names_(batch_max),
      iovecs_(batch_max),
      messages_(batch_max) {
    const std::size_t limit = intake.datagram_limit;
    for (unsigned i = 0; i < batch_max; ++i) {
        iovecs_[i] = {payloads_.data() + i * limit, limit};
        msghdr& msg = messages_[i].msg_hdr;
        msg.msg_name = &names_[i];
        msg.msg_iov = &iovecs_[i];
        msg.msg_iovlen = 1;
    }
}

int DatagramReader::read(int fd, unsigned max, std::int64_t now_ns, UdpBatch& batch) noexcept {
    max = std::min(max, batch_max);
    for (unsigned i = 0; i < max; ++i) {
        messages_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
        messages_[i].msg_hdr.msg_flags = 0;
    }
    const int received = ::recvmmsg(fd, messages_.data(), max, MSG_DONTWAIT, nullptr);
    for (int i = 0; i < received; ++i) {
        const mmsghdr& message = messages_[static_cast<std::size_t>(i)];
        const msghdr& msg = message.msg_hdr;
        const auto* peer = msg.msg_namelen != 0 ? static_cast<const sockaddr*>(msg.msg_name) : nullptr;
        intake_.on_datagram(peer, {static_cast<const char*>(msg.msg_iov->iov_base), message.msg_len},
                            (msg.msg_flags & MSG_TRUNC) != 0, now_ns, batch);
    }
    return received;
}

void Intake::flush(UdpBatch& batch, int udp_fd) noexcept {
    ReceiveStats& s = stats;
    if (udp_fd >= 0 && batch.seen() != 0) batch.kernel_drops = udp_socket_drops(udp_fd);
    const bool warn_drops = lane != calibration_lane;
    if (batch.datagrams != 0) {
        bump(s.datagrams, batch.datagrams);
        bump(s.bytes, batch.bytes);
    }
    if (batch.empty != 0) bump(s.empty, batch.empty);
    if (batch.oversize != 0) {
        bump(s.oversize, batch.oversize);
        if (warn_drops)
            CEFD_LOG_EVERY(10, warn,
                           "receive: %s dropped UDP datagrams over %u bytes "
                           "(receive_oversize_total=%llu; raise receive.datagram_bytes_max)",
                           name.c_str(), datagram_limit, static_cast<unsigned long long>(read(s.oversize)));
    }
    if (batch.ring_full != 0) {
        bump(s.ring_full, batch.ring_full);
        if (warn_drops)
            CEFD_LOG_EVERY(10, warn,
                           "receive: %s ring full, UDP datagrams dropped "
                           "(receive_ring_full_total=%llu): the worker is behind",
                           name.c_str(), static_cast<unsigned long long>(read(s.ring_full)));
    }
    // The kernel keeps the socket's running total (32 bits): the counter adds what it grew by. It
    // followed the largest total seen, which stuck for good once the kernel's count wrapped.
    const std::uint32_t new_drops = batch.kernel_drops - kernel_drops_seen_;  // modulo 2^32
    if (batch.kernel_drops != 0 && new_drops != 0) {
        kernel_drops_seen_ = batch.kernel_drops;
        bump(s.kernel_drops, new_drops);
        if (warn_drops)
            CEFD_LOG_EVERY(10, warn,
                           "receive: %s kernel dropped UDP datagrams before they were read "
                           "(receive_kernel_drops_total=%llu): raise receive.rcvbuf_bytes or add lanes",
                           name.c_str(), static_cast<unsigned long long>(read(s.kernel_drops)));
    }
    if (batch.datagrams != 0) ring_.notify();
    batch = {};
}

}  // namespace cefd::receive
