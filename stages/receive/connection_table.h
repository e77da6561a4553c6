// stages/receive/connection_table.h: the one owner of a lane's stream connections (TCP and TLS).
//
// What it does, for both engines and TLS alike: admits accepted sockets (the lane's share of
// tcp_max_connections, Intake::connection_limit, and the process-wide per-source cap
// tcp_max_connections_per_source; when the lane's share is full, its longest-idle connection is
// evicted to make room), frames what a connection has read (tcp_framing.h) into the lane ring,
// pauses a connection whose frames do not fit (backpressure) and resumes it, closes idle connections and stalled TLS handshakes, and
// releases what a connection holds. The code that reads bytes is the engine's: it implements
// ConnectionDriver (how to resume, pause and cancel reads) and calls on_read()/on_eof() and
// process().
//
// Lifecycle: the engine owns the table; the lane's receive thread is the only caller. A closed
// connection is freed at end_pass(), not at once, so an event or completion for it later in the
// same pass still points at live memory (it sees `closed` and is ignored).
//
// Memory: a connection's read buffer (max_frame_bytes + 28 B) is allocated when it is accepted,
// never per message.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <type_traits>
#include <vector>

#include "engine/unique_fd.h"
#include "stages/receive/engine.h"
#include "stages/receive/socket.h"
#include "stages/receive/tcp_framing.h"

namespace cefd::receive {

class ConnectionDriver;
class ConnectionTable;

/// One accepted stream connection. Its read buffer holds at most one partial frame plus what
/// the last read brought.
struct Connection : Completion {
    Connection(UniqueFd socket, const SourceAddress& peer, std::uint32_t frame_bytes_max,
               std::int64_t now_ns, Transport over);
    virtual ~Connection() = default;  // TlsConnection frees its SSL first
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    [[nodiscard]] std::size_t room() const noexcept { return capacity - end; }
    [[nodiscard]] char* read_at() noexcept { return buffer.get() + end; }
    /// What user_data / data.ptr must carry: Connection is polymorphic, so its address is not
    /// its Completion's, and the event loop reads a Completion* back.
    [[nodiscard]] Completion* completion() noexcept { return this; }

    UniqueFd fd;
    SourceAddress source;
    TcpFramer framer;
    std::unique_ptr<char[]> buffer;
    std::size_t capacity = 0;
    std::size_t begin = 0;  // first byte not yet framed
    std::size_t end = 0;    // one past the last byte read
    std::int64_t accepted_ns = 0;       // monotonic
    std::int64_t last_activity_ns = 0;  // monotonic: the accept, the handshake, or the last frame delivered
    std::size_t index = 0;              // position in the table
    ConnectionDriver* driver = nullptr;
    Transport transport;    // tcp or tls: stamped on every frame, picks the frame counter
    bool handshaking = false;  // TLS: the handshake has not completed (its own timeout)
    bool paused = false;    // the lane ring was full: not reading until the frames fit
    bool eof = false;       // the peer closed (or reset); deliver what is left, then close
    bool closing = false;   // a close waits for an in-flight read (io_uring)
    bool in_flight = false; // io_uring: a recv is submitted
    bool closed = false;    // gone from the table; freed at end_pass()
    bool evicted = false;   // closed to make room for a newcomer (not a failed TLS handshake)
    bool stopped = false;   // closed because cefd stopped (not a failed TLS handshake either)
    bool reserved = true;   // holds a slot of the lane's share and of its source's cap
};

/// How an engine reads a connection. Called per read or per state change, never per message.
class ConnectionDriver {
public:
    /// The connection may be read again after a pause (epoll: watch it again; io_uring: submit
    /// a recv; TLS: also read what OpenSSL already holds).
    virtual void resume_reads(Connection& connection) = 0;
    /// The ring is full: stop reading it (the sender's window fills).
    virtual void pause_reads(Connection& connection) = 0;
    /// The table wants to close the connection (idle, evicted). True when a read is in flight
    /// that must complete first: the driver then calls ConnectionTable::on_cancelled().
    virtual bool cancel_reads(Connection& connection) = 0;
    /// Bytes that arrived but were not read yet (a recv MSG_PEEK; TLS: SSL_has_pending too).
    virtual bool has_unread_bytes(Connection& connection);
    /// Stop time, once the engine's own reads have ended: reads what the connection holds now
    /// into read_at() without blocking (a recv with MSG_DONTWAIT; TLS: SSL_read). Returns the
    /// bytes read, 0 when there is nothing now; sets `eof` at the end of the stream or an error.
    virtual std::size_t read_at_stop(Connection& connection);
    /// Just before the connection leaves the table: counters and goodbyes (TLS close_notify).
    virtual void on_close(Connection& connection) = 0;

protected:
    ~ConnectionDriver() = default;
};

/// The receive thread is stopping (its engine's own event loop has ended, and no read of its
/// is in the kernel any more): for up to receive.drain_timeout_ms, reads what the lane's UDP
/// socket (`udp_fd`, -1: none) and its connections still hold and delivers it, waiting for
/// ring room while the worker catches up; then counts and logs what is left
/// (receive_udp_unread_at_stop_total, receive_tcp_unread_at_stop_bytes_total) and closes the
/// connections. The engine closes `udp_fd` when this returns: nothing is taken in after the
/// count. Both engines
/// end with it, so that a restart delivers what the kernel had already taken in, or counts it
/// (stages/receive/README.md, "At stop", names what it cannot read).
void drain_at_stop(Intake& intake, ConnectionTable& table, int udp_fd) noexcept;

/// Stop time, before drain_at_stop: accepts what `listener`'s backlog holds (connections the
/// kernel completed, whose senders may have sent already) into `table` as TCP connections read
/// by `driver`, then closes the listener, so that a sender connecting later is refused (and
/// retries) instead of being reset, its data with it, when the process exits.
void take_backlog_at_stop(UniqueFd& listener, ConnectionTable& table, ConnectionDriver& driver,
                          ReceiveStats& stats) noexcept;

/// What a failed accept's errno means: nothing to count (the backlog is empty, the peer gave up,
/// a signal, an io_uring cancel), this connection only (EPROTO, EPERM from a firewall: it is
/// gone), or the process is out of descriptors or memory (the connection stays queued and the
/// next accept fails the same way).
enum class AcceptFailure : std::uint8_t { none, this_connection, resources };
AcceptFailure accept_failure(int error) noexcept;

/// Accept errors that mean "out of file descriptors or memory" leave the connection in the
/// backlog and fail again at once, so the listener rests for retry_ns (all engines, and TLS).
class AcceptBackoff {
public:
    static constexpr std::int64_t retry_ns = 100'000'000;
    /// Handles a failed accept's errno: counts and logs it; true when the listener must rest.
    bool on_error(int error, std::int64_t now_ns, unsigned lane, const char* protocol,
                  ReceiveStats& stats) noexcept;
    /// True while resting.
    [[nodiscard]] bool resting(std::int64_t now_ns) const noexcept { return now_ns < retry_at_ns_; }
    [[nodiscard]] std::int64_t retry_at_ns() const noexcept { return retry_at_ns_; }

private:
    std::int64_t retry_at_ns_ = 0;
};

/// A non-blocking, level-triggered listener in an epoll set (the recvmmsg engine's TCP listener,
/// every TLS listener). While it rests after an accept error it is out of the set, so a full
/// fd table does not wake the loop over and over.
struct PolledListener {
    UniqueFd fd;
    AcceptBackoff backoff;
    int epoll_fd = -1;
    void* tag = nullptr;  // the epoll event's data.ptr
    bool watched = false;

    /// Adds the listener to `epoll` with `tag`. False with errno set when epoll_ctl fails.
    bool watch(int epoll, void* event_tag) noexcept;
    /// Accepts up to `max` pending connections: on_accepted(UniqueFd, const SourceAddress&) for
    /// each. True when it stopped at `max` (more may be waiting).
    template <class OnAccepted>
    bool accept_batch(unsigned max, std::int64_t now_ns, unsigned lane, const char* protocol,
                      ReceiveStats& stats, OnAccepted&& on_accepted);
    /// Once per pass: puts a resting listener back into the set when its rest is over.
    void rewatch_if_due(std::int64_t now_ns) noexcept;

private:
    void set_watched(bool on) noexcept;
};

class ConnectionTable {
public:
    explicit ConnectionTable(Intake& intake);
    ~ConnectionTable();
    ConnectionTable(const ConnectionTable&) = delete;
    ConnectionTable& operator=(const ConnectionTable&) = delete;

    /// The clocks of this pass (wall for MessageMeta, monotonic for timeouts). Once per pass.
    void set_clock(std::int64_t now_ns, std::int64_t monotonic_now_ns) noexcept {
        now_ns_ = now_ns;
        monotonic_now_ns_ = monotonic_now_ns;
    }

    /// Admits an accepted socket as a `C` (a Connection of `transport`, or a type derived from
    /// it, built from `extra...` after the common arguments), or refuses it (closed, counted,
    /// logged): over the per-source cap, or the lane's share is full and nothing here can be
    /// evicted.
    template <class C = Connection, class... Extra>
    C* accept(UniqueFd fd, const SourceAddress& peer, Transport transport,
              ConnectionDriver& driver, Extra&&... extra) {
        if (!admit(peer, transport)) return nullptr;
        std::unique_ptr<C> connection;
        if constexpr (std::is_same_v<C, Connection>)
            connection = std::make_unique<C>(std::move(fd), peer, intake_.frame_limit,
                                             monotonic_now_ns_, transport);
        else
            connection = std::make_unique<C>(std::move(fd), peer, intake_.frame_limit,
                                             monotonic_now_ns_, std::forward<Extra>(extra)...);
        C& c = *connection;
        insert(std::move(connection), driver);
        return &c;
    }

    /// Records `bytes` read into connection.read_at(). Activity is a frame delivered
    /// (deliver_frames), not a byte: a peer that dribbles a frame that never ends is idle.
    void on_read(Connection& connection, std::size_t bytes) noexcept { connection.end += bytes; }

    enum class Next : std::uint8_t { read, paused, closed };
    /// Frames and delivers what the connection holds; then it wants more bytes (read), waits for
    /// ring space (paused: pause_reads was called), or is gone (its end of stream was reached).
    Next process(Connection& connection) noexcept;

    /// A read that cancel_reads() waited for has completed (with `bytes`, maybe 0): the close
    /// goes on; what arrived is delivered first.
    void on_cancelled(Connection& connection, std::size_t bytes) noexcept;

    /// Closes at once (a read error the driver cannot recover from; a failed TLS handshake).
    void close(Connection& connection) noexcept;

    /// Once per pass: retries paused connections, and every scan interval closes idle
    /// connections and handshakes over tls_handshake_timeout_ms.
    void service() noexcept;
    /// One pass of the stop's drain (see drain_at_stop): every connection whose handshake is
    /// done is read (read_at_stop) until it has nothing more now, and its frames delivered.
    /// True while some connection still has work (frames waiting for ring room, more to read
    /// than one pass takes) or brought bytes this pass. The caller sets the clock and waits
    /// between passes.
    bool drain_pass() noexcept;
    /// The stop's drain has ended: what connections still hold (a partial frame in the buffer,
    /// bytes the kernel holds unread, acknowledged to the sender) is not delivered. Counts it
    /// (receive_tcp_unread_at_stop_bytes_total) and says so once.
    void account_at_stop() noexcept;
    /// The stop's last step, right after account_at_stop: closes every connection (one with
    /// unread bytes is reset, so its sender learns it), so that nothing more is acknowledged
    /// that no one will read. A connection with a read still in the kernel is left to the
    /// engine's destruction.
    void close_all_at_stop() noexcept;
    /// True while some connection has a read in the kernel (io_uring).
    [[nodiscard]] bool any_in_flight() const noexcept;
    /// Calls f(Connection&) for every connection in the table (not for those closed this pass).
    template <class F>
    void for_each(F&& f) {
        for (const auto& connection : connections_) f(*connection);
    }
    /// Frees the connections closed this pass. Once per pass, after every event was handled.
    void end_pass() noexcept { graveyard_.clear(); }

    [[nodiscard]] bool any_paused() const noexcept { return !paused_.empty(); }
    [[nodiscard]] std::int64_t monotonic_now_ns() const noexcept { return monotonic_now_ns_; }
    [[nodiscard]] std::size_t size() const noexcept { return connections_.size(); }

private:
    bool admit(const SourceAddress& peer, Transport transport) noexcept;
    void insert(std::unique_ptr<Connection> connection, ConnectionDriver& driver);
    bool evict_longest_idle() noexcept;
    void retire(Connection& connection) noexcept;
    void release(Connection& connection) noexcept;
    bool deliver_frames(Connection& connection) noexcept;
    void resume_paused() noexcept;
    void scan() noexcept;

    Intake& intake_;
    std::vector<std::unique_ptr<Connection>> connections_;
    std::vector<std::unique_ptr<Connection>> graveyard_;
    std::vector<Connection*> paused_;
    std::int64_t now_ns_ = 0;
    std::int64_t monotonic_now_ns_ = 0;
    std::int64_t idle_ns_;
    std::int64_t handshake_ns_;
    std::int64_t scan_interval_ns_;
    std::int64_t next_scan_ns_ = 0;
    std::uint32_t held_ = 0;  // connections holding a slot of intake_.connection_limit
};

}  // namespace cefd::receive

namespace cefd::receive {

template <class OnAccepted>
bool PolledListener::accept_batch(unsigned max, std::int64_t now_ns, unsigned lane,
                                  const char* protocol, ReceiveStats& stats,
                                  OnAccepted&& on_accepted) {
    for (unsigned i = 0; i < max; ++i) {
        sockaddr_storage peer{};
        int error = 0;
        UniqueFd socket = accept_pending(fd.get(), peer, error);
        if (!socket.valid()) {
            if (backoff.on_error(error, now_ns, lane, protocol, stats)) set_watched(false);
            return false;
        }
        on_accepted(std::move(socket),
                    SourceAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&peer)));
    }
    return true;
}

}  // namespace cefd::receive
