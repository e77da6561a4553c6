#include "stages/receive/connection_table.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "engine/log.h"

namespace cefd::receive {
namespace {

// Open connections per sender address (not port) over all lanes, for
// tcp_max_connections_per_source. Touched once per accept and close, never per message, so a
// mutex is fine; an entry is allocated with a source's first connection and erased with its last.
class SourceCounts {
public:
    // An unknown address (the peer reset before getpeername) is no sender's: not counted, or
    // every such connection would share one count.
    bool try_add(const SourceAddress& source, std::uint32_t cap) {
        if (source.family == 0) return true;
        const std::lock_guard lock(mutex_);
        std::uint32_t& count = counts_[key(source)];  // a new entry is 0, below any cap
        if (cap != 0 && count >= cap) return false;
        ++count;
        return true;
    }
    void remove(const SourceAddress& source) noexcept {
        if (source.family == 0) return;
        const std::lock_guard lock(mutex_);
        const auto it = counts_.find(key(source));
        CEFD_ASSERT(it != counts_.end() && it->second != 0);
        if (--it->second == 0) counts_.erase(it);
    }

private:
    struct Key {
        std::uint64_t high;
        std::uint64_t low;
        std::uint8_t family;
        bool operator==(const Key&) const = default;
    };
    struct Hash {
        std::size_t operator()(const Key& k) const noexcept {
            return std::hash<std::uint64_t>{}(k.high * 0x9E3779B97F4A7C15ULL ^ k.low ^ k.family);
        }
    };
    static Key key(const SourceAddress& source) noexcept {
        Key k{0, 0, source.family};
        std::memcpy(&k.high, source.addr, 8);
        std::memcpy(&k.low, source.addr + 8, 8);
        return k;
    }
    std::mutex mutex_;
    std::unordered_map<Key, std::uint32_t, Hash> counts_;
};

SourceCounts& source_counts() {
    static SourceCounts counts;
    return counts;
}

// The least idle time that makes a connection evictable when tcp_max_connections is full.
constexpr std::int64_t evict_idle_min_ns = 1'000'000'000;

const char* kind_of(Transport transport) noexcept {
    return transport == Transport::tls ? "TLS" : "TCP";
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
      accepted_ns(now_ns),
      last_activity_ns(now_ns),
      transport(over) {}

bool ConnectionDriver::has_unread_bytes(Connection& connection) {
    char byte = 0;
    return ::recv(connection.fd.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

std::size_t ConnectionDriver::read_at_stop(Connection& connection) {
    const ssize_t n = ::recv(connection.fd.get(), connection.read_at(), connection.room(), MSG_DONTWAIT);
    if (n > 0) return static_cast<std::size_t>(n);
    // 0: the peer closed; an error other than "nothing now": the stream is over either way.
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) connection.eof = true;
    return 0;
}

void take_backlog_at_stop(UniqueFd& listener, ConnectionTable& table, ConnectionDriver& driver,
                          ReceiveStats& stats) noexcept {
    if (!listener.valid()) return;
    // The io_uring engine's listener blocks: accept must not wait for a newcomer here.
    const int flags = ::fcntl(listener.get(), F_GETFL);
    if (flags >= 0) (void)::fcntl(listener.get(), F_SETFL, flags | O_NONBLOCK);
    for (int i = 0; flags >= 0 && i < 65'536; ++i) {
        sockaddr_storage peer{};
        int error = 0;
        UniqueFd fd = accept_pending(listener.get(), peer, error);
        if (!fd.valid()) {
            if (error == EAGAIN || error == EWOULDBLOCK) break;  // the backlog is empty
            const AcceptFailure failure = accept_failure(error);
            if (failure != AcceptFailure::none) bump(stats.tcp_accept_errors);
            if (failure != AcceptFailure::resources) continue;  // that one only, if any
            CEFD_LOG(warn,
                     "receive: accepting the TCP backlog at stop failed: %s; the connections still in "
                     "it are reset (receive_tcp_accept_errors_total)",
                     std::strerror(error));
            break;
        }
        const SourceAddress source = SourceAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&peer));
        if (table.accept(std::move(fd), source, Transport::tcp, driver) != nullptr) bump(stats.tcp_accepted);
    }
    listener.reset();
}

// ---- AcceptBackoff, PolledListener ----

AcceptFailure accept_failure(int error) noexcept {
    switch (error) {
        case EAGAIN:        // no more pending connections
        case ECONNABORTED:  // the peer gave up before we accepted
        case EINTR:
        case ECANCELED:     // io_uring: the accept was cancelled at shutdown
            return AcceptFailure::none;
        case EMFILE:  // RLIMIT_NOFILE reached: the connection stays queued, accept fails again
        case ENFILE:  // the system-wide file table is full: likewise
        case ENOBUFS:
        case ENOMEM:
            return AcceptFailure::resources;
        default:
            return AcceptFailure::this_connection;
    }
}

bool AcceptBackoff::on_error(int error, std::int64_t now_ns, unsigned lane, const char* protocol,
                             ReceiveStats& stats) noexcept {
    switch (accept_failure(error)) {
        case AcceptFailure::none:
            return false;
        case AcceptFailure::resources:
            bump(stats.tcp_accept_errors);
            retry_at_ns_ = now_ns + retry_ns;
            CEFD_LOG_EVERY(10, error,
                           "receive: lane %u %s accept failed: %s; accepting again in %lld ms "
                           "(raise LimitNOFILE, or lower receive.tcp_max_connections)",
                           lane, protocol, std::strerror(error),
                           static_cast<long long>(retry_ns / 1'000'000));
            return true;
        case AcceptFailure::this_connection:
            bump(stats.tcp_accept_errors);
            CEFD_LOG_EVERY(10, error, "receive: lane %u %s accept failed: %s", lane, protocol,
                           std::strerror(error));
            return false;
    }
    return false;
}

bool PolledListener::watch(int epoll, void* event_tag) noexcept {
    epoll_fd = epoll;
    tag = event_tag;
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.ptr = tag;
    watched = ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd.get(), &event) == 0;
    return watched;
}

void PolledListener::set_watched(bool on) noexcept {
    if (on == watched) return;
    epoll_event event{};
    event.events = on ? std::uint32_t{EPOLLIN} : 0U;
    event.data.ptr = tag;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd.get(), &event) == 0) watched = on;
}

void PolledListener::rewatch_if_due(std::int64_t now_ns) noexcept {
    if (!watched && !backoff.resting(now_ns)) set_watched(true);
}

// ---- ConnectionTable ----

ConnectionTable::ConnectionTable(Intake& intake)
    : intake_(intake),
      idle_ns_(std::int64_t{intake.config.tcp_idle_timeout_ms} * 1'000'000),
      // A handshake never gets longer than an idle connection would.
      handshake_ns_(std::min(std::int64_t{intake.config.tls_handshake_timeout_ms} * 1'000'000,
                             idle_ns_)),
      scan_interval_ns_(std::clamp<std::int64_t>(std::min(idle_ns_, handshake_ns_) / 4, 1'000'000,
                                                 1'000'000'000)) {
    connections_.reserve(std::min<std::uint32_t>(intake.connection_limit, 65'536));
    paused_.reserve(64);
    graveyard_.reserve(64);
}

ConnectionTable::~ConnectionTable() {
    for (const auto& connection : connections_) release(*connection);
}

bool ConnectionTable::admit(const SourceAddress& peer, Transport transport) noexcept {
    const ReceiveConfig& config = intake_.config;
    ReceiveStats& stats = intake_.stats;
    const char* reason = nullptr;
    bool per_source = false;
    if (!source_counts().try_add(peer, config.tcp_max_connections_per_source)) {
        bump(stats.tcp_refused_per_source);
        per_source = true;
        reason = "from this source (receive.tcp_max_connections_per_source)";
    } else if (held_ >= intake_.connection_limit && !evict_longest_idle()) {
        source_counts().remove(peer);
        bump(stats.tcp_refused_max_connections);
        reason = "on this lane (its share of receive.tcp_max_connections), none idle to evict";
    }
    if (reason == nullptr) {
        ++held_;
        return true;
    }
    bump(stats.tcp_rejected);
    // One rate limit per reason: one noisy source over its cap must not hide, for 10 s, that the
    // lane is full for everyone.
    CEFD_LOG_EVERY_PER(10, 2, per_source ? 0 : 1, warn, "receive: lane %u %s connection from %s refused: too many open %s",
                       intake_.lane, kind_of(transport), peer.to_string().c_str(), reason);
    return false;  // the caller's UniqueFd closes the socket
}

void ConnectionTable::insert(std::unique_ptr<Connection> connection, ConnectionDriver& driver) {
    connection->driver = &driver;
    connection->index = connections_.size();
    connections_.push_back(std::move(connection));
}

bool ConnectionTable::evict_longest_idle() noexcept {
    // Bounded: each turn either evicts, or finds the oldest at work after all (bytes unread) and
    // marks it active, so the next turn looks at the next oldest; at most a few turns.
    Connection* oldest = nullptr;
    for (int turn = 0; turn < 8; ++turn) {
        oldest = nullptr;
        for (const auto& connection : connections_) {
            if (!connection->reserved || connection->closing) continue;  // on its way out already
            // Paused: not idle but held back by cefd, its frames waiting in the socket buffer (the
            // sender was told they arrived). Closing it would lose them.
            if (connection->paused) continue;
            if (oldest == nullptr || connection->last_activity_ns < oldest->last_activity_ns)
                oldest = connection.get();
        }
        // A connection that brought a frame within evict_idle_min_ns is a sender at work: a
        // flood of new connections must not push those out, so the newcomer is refused instead.
        if (oldest == nullptr || monotonic_now_ns_ - oldest->last_activity_ns < evict_idle_min_ns) return false;
        if (!oldest->driver->has_unread_bytes(*oldest)) break;
        oldest->last_activity_ns = monotonic_now_ns_;  // bytes arrived since its last read: at work
        oldest = nullptr;
    }
    if (oldest == nullptr) return false;
    oldest->evicted = true;
    bump(intake_.stats.tcp_evicted);
    CEFD_LOG_EVERY(10, warn,
                   "receive: lane %u all %u of its connections in use (its share of "
                   "receive.tcp_max_connections): closing the longest idle, %s from %s (idle %lld "
                   "ms; receive_tcp_evicted_total)",
                   intake_.lane, intake_.connection_limit, kind_of(oldest->transport),
                   oldest->source.to_string().c_str(),
                   static_cast<long long>((monotonic_now_ns_ - oldest->last_activity_ns) / 1'000'000));
    release(*oldest);  // its slot is the newcomer's now, even if its last read is in flight
    retire(*oldest);
    return true;
}

void ConnectionTable::retire(Connection& connection) noexcept {
    // As at the peer's end of stream: what is buffered (an unterminated last frame; an
    // octet-counted one flagged and counted as partial) is delivered before the close.
    connection.eof = true;
    if (connection.driver->cancel_reads(connection)) {
        connection.closing = true;  // on_cancelled() goes on
        return;
    }
    process(connection);
}

void ConnectionTable::on_cancelled(Connection& connection, std::size_t bytes) noexcept {
    connection.closing = false;
    connection.end += bytes;
    process(connection);  // eof is set: delivers, then closes (or pauses and closes later)
}

void ConnectionTable::release(Connection& connection) noexcept {
    if (!connection.reserved) return;
    connection.reserved = false;
    --held_;
    source_counts().remove(connection.source);
}

void ConnectionTable::close(Connection& connection) noexcept {
    CEFD_ASSERT(!connection.closed && !connection.closing);
    connection.driver->on_close(connection);
    if (connection.paused) std::erase(paused_, &connection);
    release(connection);
    connection.closed = true;
    const std::size_t index = connection.index;
    graveyard_.push_back(std::move(connections_[index]));
    if (index + 1 != connections_.size()) {
        connections_[index] = std::move(connections_.back());
        connections_[index]->index = index;
    }
    connections_.pop_back();
}

ConnectionTable::Next ConnectionTable::process(Connection& connection) noexcept {
    if (!deliver_frames(connection)) {
        if (!connection.paused) {
            connection.paused = true;
            paused_.push_back(&connection);
            connection.driver->pause_reads(connection);
        }
        return Next::paused;
    }
    if (connection.eof) {
        close(connection);
        return Next::closed;
    }
    CEFD_ASSERT(connection.room() != 0);
    return Next::read;
}

void ConnectionTable::resume_paused() noexcept {
    // Backwards, so that a connection closing or pausing again (leaving or re-entering the
    // list at its end) skips nothing.
    for (std::size_t i = paused_.size(); i-- > 0;) {
        Connection& connection = *paused_[i];
        connection.paused = false;
        paused_[i] = paused_.back();
        paused_.pop_back();
        if (process(connection) == Next::read) connection.driver->resume_reads(connection);
    }
}

void ConnectionTable::service() noexcept {
    if (!paused_.empty()) resume_paused();
    if (monotonic_now_ns_ < next_scan_ns_) return;
    next_scan_ns_ = monotonic_now_ns_ + scan_interval_ns_;
    scan();
}

bool ConnectionTable::drain_pass() noexcept {
    constexpr int reads_per_pass_max = 64;  // one fast sender must not hold up the others
    bool pending = false;
    // Backwards: a connection that closes is replaced by the last one.
    for (std::size_t i = connections_.size(); i-- > 0;) {
        Connection& connection = *connections_[i];
        // A read still in the kernel (io_uring gave up waiting for its cancel) owns the buffer.
        // A TLS handshake goes on (read_at_stop): a TLS 1.3 client sends syslog right behind
        // its Finished.
        if (connection.closing || connection.in_flight) continue;
        if (connection.paused) {  // the drain reads it itself: no resume_reads
            connection.paused = false;
            std::erase(paused_, &connection);
        }
        Next next = process(connection);  // what is buffered first (at eof: delivered, closed)
        for (int reads = 0; next == Next::read; ++reads) {
            if (reads == reads_per_pass_max) {
                pending = true;
                break;
            }
            const std::size_t bytes = connection.driver->read_at_stop(connection);
            if (bytes == 0 && !connection.eof) break;  // nothing more now
            pending = true;                            // it brought something: its sender may have more on the way
            on_read(connection, bytes);
            next = process(connection);
        }
        if (next == Next::paused) pending = true;
    }
    end_pass();
    return pending;
}

void ConnectionTable::close_all_at_stop() noexcept {
    for (std::size_t i = connections_.size(); i-- > 0;) {
        Connection& connection = *connections_[i];
        if (connection.closing || connection.in_flight) continue;
        connection.stopped = true;
        close(connection);
    }
    end_pass();
}

bool ConnectionTable::any_in_flight() const noexcept {
    return std::any_of(connections_.begin(), connections_.end(),
                       [](const auto& connection) { return connection->in_flight; });
}

void ConnectionTable::account_at_stop() noexcept {
    std::uint64_t bytes = 0;
    std::size_t holding = 0;
    for (const auto& connection : connections_) {
        if (connection->closed) continue;
        int unread = 0;  // TLS: still encrypted, so a little more than the syslog bytes
        if (::ioctl(connection->fd.get(), SIOCINQ, &unread) != 0) unread = 0;
        const std::uint64_t held = (connection->end - connection->begin) + static_cast<std::uint64_t>(std::max(unread, 0));
        if (held == 0) continue;
        bytes += held;
        ++holding;
    }
    if (bytes == 0) return;
    bump(intake_.stats.tcp_unread_at_stop_bytes, bytes);
    CEFD_LOG(warn,
             "receive: lane %u stopping with %llu bytes unread on %zu connection(s) "
             "(receive_tcp_unread_at_stop_bytes_total) when the stop's drain ended "
             "(receive.drain_timeout_ms): their senders were told they arrived, and they are not "
             "delivered",
             intake_.lane, static_cast<unsigned long long>(bytes), holding);
}

void ConnectionTable::scan() noexcept {
    ReceiveStats& stats = intake_.stats;
    for (std::size_t i = connections_.size(); i-- > 0;) {
        Connection& connection = *connections_[i];
        if (connection.closing || connection.paused) continue;
        if (connection.handshaking) {
            if (monotonic_now_ns_ - connection.accepted_ns < handshake_ns_) continue;
            bump(stats.tls_handshake_timeouts);
            CEFD_LOG_EVERY(10, warn,
                           "receive: lane %u TLS handshake with %s not done within %lld ms "
                           "(receive.tls_handshake_timeout_ms, at most tcp_idle_timeout_ms): "
                           "closed",
                           intake_.lane, connection.source.to_string().c_str(),
                           static_cast<long long>(handshake_ns_ / 1'000'000));
            close(connection);  // the TLS driver counts it as a handshake failure
            continue;
        }
        if (monotonic_now_ns_ - connection.last_activity_ns < idle_ns_) continue;
        // Bytes that arrived since the last read: not idle after all, and closing now would
        // throw them away. The next pass reads them.
        if (connection.driver->has_unread_bytes(connection)) {
            connection.last_activity_ns = monotonic_now_ns_;
            continue;
        }
        bump(stats.tcp_idle_closed);
        retire(connection);
    }
}

bool ConnectionTable::deliver_frames(Connection& connection) noexcept {
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
        meta.receive_time_ns = now_ns_;
        meta.source = connection.source;
        meta.transport = connection.transport;
        meta.flags = cut == Cut::none ? 0 : message_truncated;
        if (!intake_.write(meta, frame)) return false;
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

    const Skipped skipped = connection.framer.take_skipped();
    // A frame is activity, an empty one too, and so is a bare LF between frames (a keep-alive);
    // the bytes of a frame that never ends are not, so a slow-drip sender cannot hold a slot
    // past tcp_idle_timeout_ms.
    if ((frames != 0 || empty != 0 || skipped.separators != 0) && !connection.closing)
        connection.last_activity_ns = monotonic_now_ns_;
    ReceiveStats& s = intake_.stats;
    const char* kind = kind_of(connection.transport);
    if (frames != 0) {
        bump(connection.transport == Transport::tls ? s.tls_frames : s.tcp_frames, frames);
        bump(s.bytes, bytes);
        intake_.notify();
    }
    if (empty != 0) bump(s.empty, empty);
    if (oversize != 0) {
        bump(s.tcp_oversize_frames, oversize);
        CEFD_LOG_EVERY(10, warn,
                       "receive: lane %u %s frame over %u bytes from %s cut to that size, the rest "
                       "dropped (receive_tcp_oversize_frames_total=%llu, receive_tcp_cut_bytes_total)",
                       intake_.lane, kind, intake_.frame_limit,
                       connection.source.to_string().c_str(),
                       static_cast<unsigned long long>(read(s.tcp_oversize_frames)));
    }
    if (partial != 0) {
        bump(s.tcp_partial_frames, partial);
        CEFD_LOG_EVERY(10, warn,
                       "receive: lane %u %s peer %s closed inside an octet-counted frame; kept "
                       "the part received, flagged truncated",
                       intake_.lane, kind, connection.source.to_string().c_str());
    }
    if (skipped.frames != 0 || skipped.bytes != 0 || skipped.cut_bytes != 0) {
        bump(s.tcp_bad_frames, skipped.frames);
        bump(s.tcp_skipped_bytes, skipped.bytes);
        bump(s.tcp_cut_bytes, skipped.cut_bytes);
        if (skipped.frames != 0)
            CEFD_LOG_EVERY(10, warn,
                           "receive: lane %u %s stream from %s out of sync (octet count over "
                           "16 MiB): skipped to the next LF "
                           "(receive_tcp_skipped_bytes_total)",
                           intake_.lane, kind, connection.source.to_string().c_str());
    }
    return status != FrameStatus::blocked;
}

}  // namespace cefd::receive
