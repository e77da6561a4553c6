// engine/pipeline/config.h: the whole configuration. One TOML table per stage, one struct per
// table (defined in the stage's header, with its defaults); Config gathers them, and each stage
// only ever sees its own struct.
//
// Every key is described once, in the key table of config_keys.cpp (config_keys()): its table and name,
// the old name it also answers to, a one-line doc, its bounds where the table owns them, and
// whether SIGHUP applies it (ConfigKey::reloadable). Parsing, the range messages
// ("batch.linger_ms: must be between 1 and 60000 (got 0)"), the reload diff
// (reload_changes()) and the example file follow from it; a test checks that
// deploy/cefd.example.toml shows every key with its default.
//
// load_config() collects every problem (unknown keys and tables, wrong types, out-of-range or
// unknown enum values, unreadable or world-readable secrets) into ConfigErrors with the key's
// full name, so `cefd check-config` prints them all at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/capture/capture.h"
#include "engine/config/config_errors.h"
#include "engine/log.h"
#include "stages/batch/batch.h"
#include "stages/dedupe/dedupe.h"
#include "stages/parse/parse.h"
#include "stages/receive/receive.h"
#include "stages/send/send.h"
#include "stages/spool/spool.h"

namespace cefd {

struct RuntimeConfig {
    /// Lanes (receive + worker thread pairs). 0: one per core this process may use.
    std::uint32_t workers = 0;
    /// Cores for lane i's receive thread: receive_cores[i % size]. Empty: lane i uses the i-th
    /// allowed core (wrapping), the same core as its worker, so the ring stays in that core's cache.
    std::vector<std::uint32_t> receive_cores;
    /// Cores for lane i's worker thread, likewise.
    std::vector<std::uint32_t> worker_cores;
    /// Pin threads to cores at all. Off for shared hosts where the scheduler knows better.
    bool pin_threads = true;
    /// Bytes of each lane's ring between receiver and worker (a power of two, at least 1 MiB).
    /// At 600-byte Darktrace events, 16 MiB holds about 25,000 messages: a 100 ms stall at 250k/s.
    std::uint32_t ring_bytes = 16 * 1024 * 1024;
    /// How long SIGTERM may take in all: drain rings, seal batches, deliver or spool them.
    std::uint32_t shutdown_timeout_ms = 15'000;
    /// Log level; `cefd run --log-level` overrides it at start. Reloaded on SIGHUP.
    log::Level log_level = log::Level::info;

    void validate(ConfigErrors& errors) const;
};

struct MetricsConfig {
    /// host:port for Prometheus text at /metrics, and /healthz and /readyz. Empty turns the
    /// endpoint off.
    std::string listen = "127.0.0.1:9514";
    /// Log a one-line summary of the counters every this many seconds (0 = never).
    std::uint32_t log_interval_s = 60;
    /// Connections open at once on the endpoint; a new one beyond this evicts the oldest
    /// unanswered one (counted as reason="evicted").
    std::uint32_t max_connections = 64;
    /// A client has this long to send its request, and as long again to read the answer.
    std::uint32_t read_timeout_ms = 2'000;
    /// /readyz fails its "send" check when the last delivery failed and at least this many
    /// batches wait in the spool.
    std::uint32_t ready_backlog_batches_max = 100;

    void validate(ConfigErrors& errors) const;
};

struct Config {
    RuntimeConfig runtime;
    ReceiveConfig receive;
    ParseConfig parse;
    DedupeConfig dedupe;
    BatchConfig batch;
    SpoolConfig spool;
    AzureConfig azure;
    MetricsConfig metrics;
    CaptureConfig capture;  // [capture]: raw received messages to zstd files (off by default)
    /// Where the config came from (a path, or "<string>").
    std::string origin;
};

/// One key of the file, as config_keys() lists it.
struct ConfigKey {
    std::string_view table;  // "receive"
    std::string_view name;   // "max_datagram_bytes"
    std::string_view alias;  // the older name it also answers to ("datagram_bytes_max"), or ""
    std::string_view doc;    // one line
    bool reloadable;         // SIGHUP applies a new value; else "needs restart"
    [[nodiscard]] std::string full_name() const { return std::string(table) + "." + std::string(name); }
};

/// Every key in file order ([[azure.targets]] counts as the one key "azure.targets").
const std::vector<ConfigKey>& config_keys();
/// The value of `key` in `config` as TOML text: 5514, true, "auto", [0, 1]; secrets as "***".
std::string config_value_text(const Config& config, const ConfigKey& key);

/// What a reload would change: each key whose value differs between `running` and `file`.
struct ConfigChange {
    const ConfigKey* key;
    std::string running;  // config_value_text() of each side
    std::string file;
};
std::vector<ConfigChange> reload_changes(const Config& running, const Config& file);
/// Sets `key` in `to` to its value in `from`.
void copy_config_value(Config& to, const Config& from, const ConfigKey& key);

/// What a command needs from the file. `all` for run and check; `parse` reads and checks only
/// [receive] and [parse] (other tables are only checked to be known), for `cefd parse`.
enum class ConfigScope : std::uint8_t { all, parse };

/// Parses and validates a config file. Returns nullopt when `errors` is not empty.
std::optional<Config> load_config_file(const std::string& path, ConfigErrors& errors,
                                       ConfigScope scope = ConfigScope::all);
/// The same for TOML text; `origin` names it in messages.
std::optional<Config> load_config_text(const std::string& text, const std::string& origin,
                                       ConfigErrors& errors, ConfigScope scope = ConfigScope::all);

}  // namespace cefd
