// engine/pipeline/check_startup.h: what `cefd run` would hit at start, found before starting.
//
// Used by three callers: `cefd run` (ensure_file_limit and InstanceLock, before any port is
// bound), `cefd check-config` (check_startup: every problem at once, without binding for
// good) and `cefd check` (one step each). Nothing here is on a hot path; every function runs
// on the calling thread and may read /proc.
//
// One instance per spool and per port: lanes of one process share their ports with
// SO_REUSEPORT, so the kernel would just as happily split traffic with a second cefd started on
// the same ports. InstanceLock prevents that. It holds, for the life of the process, an
// abstract Unix socket named after each listener ("cefd udp 127.0.0.1:5514"), which the
// kernel frees when the process exits, however it exits. A second instance fails to bind the
// name, connects to it instead and learns the holder's pid from SO_PEERCRED. The spool dir's
// own LOCK (flock, taken by Spool::open) is checked first, and its holder found in /proc/locks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/config/config_errors.h"
#include "engine/pipeline/config.h"
#include "engine/result.h"
#include "engine/unique_fd.h"

namespace cefd {

/// One socket `cefd run` binds.
struct Listener {
    std::string key;       // the config key, for messages: "receive.udp_port"
    bool udp = false;      // else TCP
    std::string host;      // as configured ("127.0.0.1", "::", "localhost")
    std::uint16_t port = 0;
    [[nodiscard]] std::string text() const;  // "udp 127.0.0.1:5514"
};

/// The listeners `config` asks for (ports that are not 0): UDP, TCP, TLS, metrics.
std::vector<Listener> listeners_of(const Config& config);

/// Who holds a local port, if this process may see it: "pid 1234 (cefd)"; "" otherwise.
/// Reads /proc/net/{udp,tcp}{,6} (socket inodes) and /proc/*/fd (which process has them).
std::string port_holder(bool udp, std::uint16_t port);

/// Binds `listener` once, without SO_REUSEPORT, and closes it again. The error says why not
/// (in use, and by whom; a privileged port without CAP_NET_BIND_SERVICE; not a local address).
Status probe_bind(const Listener& listener);

/// Can the process create files in `dir` (or create `dir`)? Statically: the nearest existing
/// ancestor must be a directory we may write. Not a substitute for really writing.
Status check_dir_writable(const std::string& dir);

/// Descriptors the config may hold at once: every TCP/TLS connection, two per spool segment
/// (with the spool at max_bytes), the lanes' sockets and rings, metrics connections, and a
/// margin for curl, logs and /proc.
std::uint64_t file_limit_needed(const Config& config);
/// Raises the soft RLIMIT_NOFILE towards file_limit_needed(), up to the hard limit (`raise`;
/// without it, only reports). Fails with a hint (LimitNOFILE=) when the hard limit cannot even
/// hold the connections and 64 spool segments. Returns a warning ("" when none) when it can
/// start but a full spool would run out of descriptors.
Result<std::string> ensure_file_limit(const Config& config, bool raise);

/// Everything `run` checks at start that can be checked without starting: spool and
/// dead-letter dirs writable, listeners bindable, the descriptor limit. Appends to `errors`.
void check_startup(const Config& config, ConfigErrors& errors);

/// See the header comment. Move-only; released when destroyed.
class InstanceLock {
public:
    /// Fails with the holder's pid when another process uses this spool dir or these ports.
    static Result<InstanceLock> acquire(const Config& config);

private:
    std::vector<UniqueFd> sockets_;
};

}  // namespace cefd
