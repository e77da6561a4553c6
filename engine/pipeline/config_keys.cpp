// The key table (see config_keys.h): one line per key of cefd.toml.
#include "engine/pipeline/config_keys.h"

#include "engine/log.h"

namespace cefd {
namespace config_detail {

#define CEFD_FIELD(member) +[](Config& c) -> decltype(auto) { return (c.member); }
#define CEFD_ENUM(member, ...) \
    EnumField{+[](Config& c) -> std::uint8_t& { return reinterpret_cast<std::uint8_t&>(c.member); }, {__VA_ARGS__}}

constexpr bool live = true;
constexpr bool restart = false;


const std::vector<Key>& keys() {
    static const std::vector<Key> table = {
        // [runtime]
        {{"runtime", "workers", "", "lanes (receive + worker thread pairs); 0 = one per usable core", restart},
         CEFD_FIELD(runtime.workers),
         0,
         256},
        {{"runtime", "receive_cores", "", "lane i's receive thread runs on receive_cores[i % n]; [] = automatic",
          restart},
         CEFD_FIELD(runtime.receive_cores)},
        {{"runtime", "worker_cores", "", "lane i's worker thread likewise", restart}, CEFD_FIELD(runtime.worker_cores)},
        {{"runtime", "pin_threads", "", "pin threads to those cores", restart}, CEFD_FIELD(runtime.pin_threads)},
        {{"runtime", "ring_bytes", "", "per-lane ring between receiver and worker (power of two, >= 1 MiB)", restart},
         CEFD_FIELD(runtime.ring_bytes)},
        {{"runtime", "shutdown_timeout_ms", "", "SIGTERM: longest time to drain, seal and deliver before exit",
          restart},
         CEFD_FIELD(runtime.shutdown_timeout_ms),
         100,
         600'000},
        {{"runtime", "log_level", "",
          "\"error\", \"warn\", \"info\" or \"debug\"; `cefd run --log-level` overrides it at start", live},
         CEFD_ENUM(runtime.log_level, "error", "warn", "info", "debug")},
        // [receive]
        {{"receive", "listen", "", "address of every listener", restart}, CEFD_FIELD(receive.listen)},
        {{"receive", "udp_port", "", "0 = off; below 1024 needs CAP_NET_BIND_SERVICE", restart},
         CEFD_FIELD(receive.udp_port)},
        {{"receive", "tcp_port", "", "0 = off; RFC 6587 framing", restart}, CEFD_FIELD(receive.tcp_port)},
        {{"receive", "max_datagram_bytes", "datagram_bytes_max", "longer datagrams are counted and dropped", restart},
         CEFD_FIELD(receive.datagram_bytes_max)},
        {{"receive", "buffers_per_core", "", "io_uring provided buffers per lane (power of two)", restart},
         CEFD_FIELD(receive.buffers_per_core)},
        {{"receive", "rcvbuf_bytes", "", "SO_RCVBUF per UDP socket; capped by net.core.rmem_max", restart},
         CEFD_FIELD(receive.rcvbuf_bytes)},
        {{"receive", "max_frame_bytes", "", "longer TCP frames are cut to this and counted", restart},
         CEFD_FIELD(receive.max_frame_bytes)},
        {{"receive", "max_tcp_connections", "tcp_max_connections",
          "TCP + TLS, all lanes; each lane holds total / lanes", restart},
         CEFD_FIELD(receive.tcp_max_connections)},
        {{"receive", "max_tcp_connections_per_source", "tcp_max_connections_per_source",
          "per sender address; 0 = no cap", restart},
         CEFD_FIELD(receive.tcp_max_connections_per_source)},
        {{"receive", "tcp_idle_timeout_ms", "", "close TCP connections idle this long", restart},
         CEFD_FIELD(receive.tcp_idle_timeout_ms)},
        {{"receive", "tls_handshake_timeout_ms", "", "close TLS connections whose handshake takes longer", restart},
         CEFD_FIELD(receive.tls_handshake_timeout_ms)},
        {{"receive", "drain_timeout_ms", "",
          "at stop, longest time a lane reads and delivers what its sockets still hold; 0 = no drain (what is left is "
          "counted)",
          restart},
         CEFD_FIELD(receive.drain_timeout_ms)},
        {{"receive", "engine", "",
          "\"auto\" (the cheaper per datagram, measured at start), \"io_uring\" or \"recvmmsg\"", restart},
         CEFD_ENUM(receive.engine, "auto", "io_uring", "recvmmsg")},
        {{"receive", "udp_spread", "",
          "\"flow\" (the kernel's hash of the sender's address and port) or \"content\" (a hash of each datagram's "
          "last bytes: one sender fills every lane, a repeat meets its first copy)",
          restart},
         CEFD_ENUM(receive.udp_spread, "content", "flow")},
        {{"receive", "tls_port", "", "TLS syslog (RFC 5425); only when tls_cert_file is set", restart},
         CEFD_FIELD(receive.tls_port)},
        {{"receive", "tls_cert_file", "",
          "server certificate chain (PEM); the files' contents are reloaded on SIGHUP, a new path needs a restart",
          restart},
         CEFD_FIELD(receive.tls_cert_file)},
        {{"receive", "tls_key_file", "", "its private key (PEM, chmod 600)", restart},
         CEFD_FIELD(receive.tls_key_file)},
        {{"receive", "tls_client_ca_file", "", "set: clients must present a certificate chaining to this CA", restart},
         CEFD_FIELD(receive.tls_client_ca_file)},
        // [parse]
        {{"parse", "non_cef", "", "\"drop\" or \"syslog_table\"", restart},
         CEFD_ENUM(parse.non_cef, "drop", "syslog_table")},
        {{"parse", "collector_host_name", "", "CollectorHostName on every row; \"\" = this machine's host name",
          restart},
         CEFD_FIELD(parse.collector_host_name)},
        {{"parse", "max_field_bytes", "field_bytes_max", "256-65536; longer column values are cut and counted",
          restart},
         CEFD_FIELD(parse.field_bytes_max)},
        {{"parse", "additional_extensions_trailing_separator", "", "true: end AdditionalExtensions with ';'", restart},
         CEFD_FIELD(parse.additional_extensions_trailing_separator)},
        // [dedupe]
        {{"dedupe", "window_ms", "", "suppress exact repeats from the same sender within this window; 0 = off", live},
         CEFD_FIELD(dedupe.window_ms)},
        {{"dedupe", "max_entries", "", "remembered messages per lane (power of two)", live},
         CEFD_FIELD(dedupe.max_entries)},
        // [batch]
        {{"batch", "max_bytes", "", "uncompressed JSON per request; 1 MiB is Azure's limit", live},
         CEFD_FIELD(batch.max_bytes)},
        {{"batch", "linger_ms", "", "a batch is sent at most this long after its first row", live},
         CEFD_FIELD(batch.linger_ms)},
        {{"batch", "gzip_level", "",
          "0 = least CPU (default), 1 = about 10 % fewer wire bytes for about 9 % more gzip CPU, up to 9", restart},
         CEFD_FIELD(batch.gzip_level)},
        {{"batch", "compressor", "", "\"auto\", \"igzip\" or \"libdeflate\"", restart},
         CEFD_ENUM(batch.compressor, "auto", "igzip", "libdeflate")},
        // [spool]
        {{"spool", "dir", "", "created 0700 if missing", restart}, CEFD_FIELD(spool.dir)},
        {{"spool", "mode", "", "\"always\" or \"overflow\"", restart}, CEFD_ENUM(spool.mode, "always", "overflow")},
        {{"spool", "fsync", "", "\"batch\", \"interval\" or \"never\"", restart},
         CEFD_ENUM(spool.fsync, "batch", "interval", "never")},
        {{"spool", "fsync_interval_ms", "", "fsync = \"interval\": how often", restart},
         CEFD_FIELD(spool.fsync_interval_ms)},
        {{"spool", "max_bytes", "", "compressed batches at most", restart}, CEFD_FIELD(spool.max_bytes)},
        {{"spool", "when_full", "", "\"drop_oldest\", \"drop_newest\" or \"block\"", restart},
         CEFD_ENUM(spool.when_full, "drop_oldest", "drop_newest", "block")},
        {{"spool", "segment_bytes", "", "bytes per segment file", restart}, CEFD_FIELD(spool.segment_bytes)},
        {{"spool", "block_timeout_ms", "", "when_full = \"block\": longest wait for space", restart},
         CEFD_FIELD(spool.block_timeout_ms)},
        {{"spool", "overflow_memory_batches", "", "mode = \"overflow\": batches in memory before spilling", restart},
         CEFD_FIELD(spool.overflow_memory_batches)},
        {{"spool", "max_corrupt_files", "corrupt_files_max", "damaged files kept in <dir>/corrupt/", restart},
         CEFD_FIELD(spool.corrupt_files_max)},
        // [azure]
        {{"azure", "endpoint", "", "DCE or the DCR's logsIngestion endpoint", live}, CEFD_FIELD(azure.target.endpoint)},
        {{"azure", "dcr_id", "", "the DCR's immutableId", live}, CEFD_FIELD(azure.target.dcr_id)},
        {{"azure", "stream", "", "DCR stream for CommonSecurityLog rows", live}, CEFD_FIELD(azure.target.stream)},
        {{"azure", "syslog_stream", "", "DCR stream for Syslog rows", live}, CEFD_FIELD(azure.target.syslog_stream)},
        {{"azure", "auth", "", "how cefd gets its token", restart},
         CEFD_ENUM(azure.auth, "client_secret", "client_certificate", "managed_identity", "workload_identity", "arc",
                   "none")},
        {{"azure", "authority_host", "", "Entra ID authority", live}, CEFD_FIELD(azure.authority_host)},
        {{"azure", "tenant_id", "", "the app's tenant", live}, CEFD_FIELD(azure.tenant_id)},
        {{"azure", "client_id", "", "the app (or managed identity) client id", live}, CEFD_FIELD(azure.client_id)},
        {{"azure", "client_secret", "", "inline secret (the config must then be chmod 600)", live},
         CEFD_FIELD(azure.client_secret)},
        {{"azure", "client_secret_file", "", "file holding the secret (chmod 600); re-read on SIGHUP", live},
         CEFD_FIELD(azure.client_secret_file)},
        {{"azure", "client_certificate_file", "", "auth = \"client_certificate\": PEM certificate", live},
         CEFD_FIELD(azure.client_certificate_file)},
        {{"azure", "client_key_file", "", "its PEM RSA key; \"\" = in client_certificate_file", live},
         CEFD_FIELD(azure.client_key_file)},
        {{"azure", "identity_endpoint", "", "auth = \"arc\": the identity endpoint", live},
         CEFD_FIELD(azure.identity_endpoint)},
        {{"azure", "arc_token_dir", "", "auth = \"arc\": the only directory a key file is read from", restart},
         CEFD_FIELD(azure.arc_token_dir)},
        {{"azure", "scope", "", "token scope", live}, CEFD_FIELD(azure.scope)},
        {{"azure", "imds_endpoint", "", "managed identity token endpoint", live}, CEFD_FIELD(azure.imds_endpoint)},
        {{"azure", "audience", "", "resource for managed-identity tokens", live}, CEFD_FIELD(azure.audience)},
        {{"azure", "ca_file", "", "extra CA bundle (PEM)", restart}, CEFD_FIELD(azure.ca_file)},
        {{"azure", "proxy", "", "HTTPS proxy URL", restart}, CEFD_FIELD(azure.proxy)},
        {{"azure", "max_in_flight", "", "concurrent requests", restart}, CEFD_FIELD(azure.max_in_flight)},
        {{"azure", "connect_timeout_ms", "", "per request", restart}, CEFD_FIELD(azure.connect_timeout_ms)},
        {{"azure", "request_timeout_ms", "", "per request", restart}, CEFD_FIELD(azure.request_timeout_ms)},
        {{"azure", "dead_letter_dir", "", "batches Azure refused for good", restart},
         CEFD_FIELD(azure.dead_letter_dir)},
        {{"azure", "drain_timeout_ms", "", "on shutdown, longest wait for delivery", restart},
         CEFD_FIELD(azure.drain_timeout_ms)},
        {{"azure", "retry_initial_ms", "", "first retry delay", restart}, CEFD_FIELD(azure.retry_initial_ms)},
        {{"azure", "retry_max_ms", "", "cap for that delay", restart}, CEFD_FIELD(azure.retry_max_ms)},
        {{"azure", "forbidden_retry_window_ms", "", "retry 403 this long before dead-lettering", restart},
         CEFD_FIELD(azure.forbidden_retry_window_ms)},
        {{"azure", "targets", "", "[[azure.targets]]: more targets, by weight", live}, TargetsField{}},
        // [metrics]
        {{"metrics", "listen", "", "/metrics, /healthz, /readyz; \"\" = off", restart}, CEFD_FIELD(metrics.listen)},
        {{"metrics", "log_interval_s", "", "a one-line counter summary every N seconds; 0 = never", live},
         CEFD_FIELD(metrics.log_interval_s)},
        {{"metrics", "max_connections", "", "open at once", restart}, CEFD_FIELD(metrics.max_connections), 1, 4'096},
        {{"metrics", "read_timeout_ms", "", "to send a request, and again to read the answer", restart},
         CEFD_FIELD(metrics.read_timeout_ms),
         100,
         60'000},
        {{"metrics", "max_ready_backlog_batches", "ready_backlog_batches_max",
          "/readyz \"send\" fails when delivery failed and this many wait", restart},
         CEFD_FIELD(metrics.ready_backlog_batches_max),
         1,
         100'000'000},
        // [capture]
        {{"capture", "dir", "", "raw received messages to zstd files here; \"\" = off", restart},
         CEFD_FIELD(capture.dir)},
        {{"capture", "max_bytes", "", "all capture files together", restart}, CEFD_FIELD(capture.max_bytes)},
        {{"capture", "rotate_bytes", "", "a new file after this many compressed bytes", restart},
         CEFD_FIELD(capture.rotate_bytes)},
        {{"capture", "queue_bytes", "", "each lane's queue to the capture thread", restart},
         CEFD_FIELD(capture.queue_bytes)},
    };
    return table;
}

#undef CEFD_FIELD
#undef CEFD_ENUM

const Key& key_of(const ConfigKey& info) {
    for (const Key& key : keys())
        if (key.info.table == info.table && key.info.name == info.name) return key;
    CEFD_ASSERT(false && "a ConfigKey that is not in the table");
    return keys().front();
}

std::string toml_string(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

}  // namespace config_detail

const std::vector<ConfigKey>& config_keys() {
    static const std::vector<ConfigKey> list = [] {
        std::vector<ConfigKey> out;
        for (const config_detail::Key& key : config_detail::keys()) out.push_back(key.info);
        return out;
    }();
    return list;
}

}  // namespace cefd
