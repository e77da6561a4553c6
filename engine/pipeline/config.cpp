#include "engine/pipeline/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <bit>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>
#include <utility>
#include <variant>

#include <toml++/toml.h>

#include "engine/log.h"

namespace cefd {
namespace {

/// Reads the keys of one TOML table into a struct, remembering which keys were used, so that
/// finish() can report every unknown key with its full name.
class TableReader {
public:
    TableReader(const toml::table* table, std::string prefix, ConfigErrors& errors)
        : table_(table), prefix_(std::move(prefix)), errors_(errors) {}

    ~TableReader() { finish(); }

    void read(std::string_view key, std::string& out) {
        if (const toml::node* node = take(key)) {
            if (auto value = node->value<std::string>()) out = *value;
            else wrong_type(key, "a string");
        }
    }
    void read(std::string_view key, bool& out) {
        if (const toml::node* node = take(key)) {
            if (auto value = node->value<bool>(); value && node->is_boolean()) out = *value;
            else wrong_type(key, "true or false");
        }
    }
    template <class T>
        requires std::is_integral_v<T>
    void read(std::string_view key, T& out) {
        if (const toml::node* node = take(key)) {
            if (!node->is_integer()) return wrong_type(key, "an integer");
            const std::int64_t value = *node->value<std::int64_t>();
            if (value < 0 || static_cast<std::uint64_t>(value) > std::numeric_limits<T>::max()) {
                errors_.add(full(key), "must be between 0 and " + std::to_string(std::numeric_limits<T>::max()) +
                                           " (got " + std::to_string(value) + ")");
                return;
            }
            out = static_cast<T>(value);
        }
    }
    void read(std::string_view key, std::vector<std::uint32_t>& out) {
        if (const toml::node* node = take(key)) {
            const toml::array* array = node->as_array();
            if (array == nullptr) return wrong_type(key, "an array of integers");
            out.clear();
            for (const toml::node& item : *array) {
                auto value = item.value<std::int64_t>();
                if (!item.is_integer() || !value || *value < 0 || *value > 4095) {
                    errors_.add(full(key), "every item must be a core number between 0 and 4095");
                    return;
                }
                out.push_back(static_cast<std::uint32_t>(*value));
            }
        }
    }
    void read_secret(std::string_view key, Secret& out) {
        std::string value;
        if (has(key)) {
            read(key, value);
            out = Secret(std::move(value));
        }
    }
    /// An enum key: `names` are its values' names in declaration order; `out` gets the index.
    void read_enum(std::string_view key, std::uint8_t& out, const std::vector<std::string_view>& names) {
        const toml::node* node = take(key);
        if (node == nullptr) return;
        auto value = node->value<std::string>();
        std::string choices;
        for (std::size_t i = 0; i < names.size(); ++i) {
            if (value && *value == names[i]) {
                out = static_cast<std::uint8_t>(i);
                return;
            }
            choices += choices.empty() ? "" : ", ";
            choices += '"';
            choices += names[i];
            choices += '"';
        }
        std::string problem = "must be one of " + choices;
        if (value) {
            problem += " (got \"";
            problem += *value;
            problem += "\")";
        } else {
            problem += " (got a non-string)";
        }
        errors_.add(full(key), problem);
    }

    /// For keys read by hand (arrays of tables).
    void mark_used(std::string_view key) { used_.insert(std::string(key)); }

    [[nodiscard]] bool has(std::string_view key) const {
        return table_ != nullptr && table_->contains(key);
    }
    [[nodiscard]] std::string full(std::string_view key) const {
        return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
    }

    void finish() {
        if (table_ == nullptr || finished_) return;
        finished_ = true;
        for (const auto& [key, node] : *table_) {
            if (!used_.contains(std::string(key.str()))) errors_.add(full(key.str()), "unknown key");
        }
    }

private:
    const toml::node* take(std::string_view key) {
        if (table_ == nullptr) return nullptr;
        used_.insert(std::string(key));
        return table_->get(key);
    }
    void wrong_type(std::string_view key, std::string_view expected) {
        errors_.add(full(key), "must be " + std::string(expected));
    }

    const toml::table* table_;
    std::string prefix_;
    ConfigErrors& errors_;
    std::set<std::string> used_;
    bool finished_ = false;
};

const toml::table* subtable(const toml::table& root, std::string_view name, ConfigErrors& errors) {
    const toml::node* node = root.get(name);
    if (node == nullptr) return nullptr;
    if (!node->is_table()) {
        errors.add(name, "must be a table ([" + std::string(name) + "])");
        return nullptr;
    }
    return node->as_table();
}

// ---- the key table ------------------------------------------------------------------------

/// A key's place in Config. An enum is read as its std::uint8_t; `names` lists its values in
/// declaration order (every config enum is a uint8_t counted from 0).
struct EnumField {
    std::uint8_t& (*ref)(Config&);
    std::vector<std::string_view> names;
};
struct TargetsField {};  // [[azure.targets]]: read by hand in read_azure_extras()
using Field = std::variant<std::uint16_t& (*)(Config&), std::uint32_t& (*)(Config&), std::uint64_t& (*)(Config&),
                           bool& (*)(Config&), std::string& (*)(Config&), std::vector<std::uint32_t>& (*)(Config&),
                           Secret& (*)(Config&), EnumField, TargetsField>;

struct Key {
    ConfigKey info;
    Field field;
    std::int64_t min = 0;   // bounds, checked when the file sets the key; max < min: the type's range
    std::int64_t max = -1;  // (most stages check their own ranges in their validate())
};

#define CEFD_FIELD(member) +[](Config& c) -> decltype(auto) { return (c.member); }
#define CEFD_ENUM(member, ...) \
    EnumField{+[](Config& c) -> std::uint8_t& { return reinterpret_cast<std::uint8_t&>(c.member); }, {__VA_ARGS__}}

constexpr bool live = true;
constexpr bool restart = false;

const std::vector<Key>& keys() {
    static const std::vector<Key> table = {
        // [runtime]
        {{"runtime", "workers", "", "lanes (receive + worker thread pairs); 0 = one per usable core", restart}, CEFD_FIELD(runtime.workers), 0, 256},
        {{"runtime", "receive_cores", "", "lane i's receive thread runs on receive_cores[i % n]; [] = automatic", restart}, CEFD_FIELD(runtime.receive_cores)},
        {{"runtime", "worker_cores", "", "lane i's worker thread likewise", restart}, CEFD_FIELD(runtime.worker_cores)},
        {{"runtime", "pin_threads", "", "pin threads to those cores", restart}, CEFD_FIELD(runtime.pin_threads)},
        {{"runtime", "ring_bytes", "", "per-lane ring between receiver and worker (power of two, >= 1 MiB)", restart}, CEFD_FIELD(runtime.ring_bytes)},
        {{"runtime", "shutdown_timeout_ms", "", "SIGTERM: longest time to drain, seal and deliver before exit", restart}, CEFD_FIELD(runtime.shutdown_timeout_ms), 100, 600'000},
        {{"runtime", "log_level", "", "\"error\", \"warn\", \"info\" or \"debug\"; `cefd run --log-level` overrides it at start", live}, CEFD_ENUM(runtime.log_level, "error", "warn", "info", "debug")},
        // [receive]
        {{"receive", "listen", "", "address of every listener", restart}, CEFD_FIELD(receive.listen)},
        {{"receive", "udp_port", "", "0 = off; below 1024 needs CAP_NET_BIND_SERVICE", restart}, CEFD_FIELD(receive.udp_port)},
        {{"receive", "tcp_port", "", "0 = off; RFC 6587 framing", restart}, CEFD_FIELD(receive.tcp_port)},
        {{"receive", "max_datagram_bytes", "datagram_bytes_max", "longer datagrams are counted and dropped", restart}, CEFD_FIELD(receive.datagram_bytes_max)},
        {{"receive", "buffers_per_core", "", "io_uring provided buffers per lane (power of two)", restart}, CEFD_FIELD(receive.buffers_per_core)},
        {{"receive", "rcvbuf_bytes", "", "SO_RCVBUF per UDP socket; capped by net.core.rmem_max", restart}, CEFD_FIELD(receive.rcvbuf_bytes)},
        {{"receive", "max_frame_bytes", "", "longer TCP frames are cut to this and counted", restart}, CEFD_FIELD(receive.max_frame_bytes)},
        {{"receive", "max_tcp_connections", "tcp_max_connections", "TCP + TLS, all lanes", restart}, CEFD_FIELD(receive.tcp_max_connections)},
        {{"receive", "max_tcp_connections_per_source", "tcp_max_connections_per_source", "per sender address; 0 = no cap", restart}, CEFD_FIELD(receive.tcp_max_connections_per_source)},
        {{"receive", "tcp_idle_timeout_ms", "", "close TCP connections idle this long", restart}, CEFD_FIELD(receive.tcp_idle_timeout_ms)},
        {{"receive", "tls_handshake_timeout_ms", "", "close TLS connections whose handshake takes longer", restart}, CEFD_FIELD(receive.tls_handshake_timeout_ms)},
        {{"receive", "engine", "", "\"auto\", \"io_uring\" or \"recvmmsg\"", restart}, CEFD_ENUM(receive.engine, "auto", "io_uring", "recvmmsg")},
        {{"receive", "tls_port", "", "TLS syslog (RFC 5425); only when tls_cert_file is set", restart}, CEFD_FIELD(receive.tls_port)},
        {{"receive", "tls_cert_file", "", "server certificate chain (PEM); the files' contents are reloaded on SIGHUP, a new path needs a restart", restart}, CEFD_FIELD(receive.tls_cert_file)},
        {{"receive", "tls_key_file", "", "its private key (PEM, chmod 600)", restart}, CEFD_FIELD(receive.tls_key_file)},
        {{"receive", "tls_client_ca_file", "", "set: clients must present a certificate chaining to this CA", restart}, CEFD_FIELD(receive.tls_client_ca_file)},
        // [parse]
        {{"parse", "non_cef", "", "\"drop\" or \"syslog_table\"", restart}, CEFD_ENUM(parse.non_cef, "drop", "syslog_table")},
        {{"parse", "collector_host_name", "", "CollectorHostName on every row; \"\" = this machine's host name", restart}, CEFD_FIELD(parse.collector_host_name)},
        {{"parse", "max_field_bytes", "field_bytes_max", "256-65536; longer column values are cut and counted", restart}, CEFD_FIELD(parse.field_bytes_max)},
        {{"parse", "additional_extensions_trailing_separator", "", "true: end AdditionalExtensions with ';'", restart}, CEFD_FIELD(parse.additional_extensions_trailing_separator)},
        // [dedupe]
        {{"dedupe", "window_ms", "", "suppress exact repeats from the same sender within this window; 0 = off", live}, CEFD_FIELD(dedupe.window_ms)},
        {{"dedupe", "max_entries", "", "remembered messages per lane (power of two)", live}, CEFD_FIELD(dedupe.max_entries)},
        // [batch]
        {{"batch", "max_bytes", "", "uncompressed JSON per request; 1 MiB is Azure's limit", live}, CEFD_FIELD(batch.max_bytes)},
        {{"batch", "linger_ms", "", "a batch is sent at most this long after its first row", live}, CEFD_FIELD(batch.linger_ms)},
        {{"batch", "gzip_level", "", "1 = fastest", restart}, CEFD_FIELD(batch.gzip_level)},
        {{"batch", "compressor", "", "\"auto\", \"igzip\" or \"libdeflate\"", restart}, CEFD_ENUM(batch.compressor, "auto", "igzip", "libdeflate")},
        // [spool]
        {{"spool", "dir", "", "created 0700 if missing", restart}, CEFD_FIELD(spool.dir)},
        {{"spool", "mode", "", "\"always\" or \"overflow\"", restart}, CEFD_ENUM(spool.mode, "always", "overflow")},
        {{"spool", "fsync", "", "\"batch\", \"interval\" or \"never\"", restart}, CEFD_ENUM(spool.fsync, "batch", "interval", "never")},
        {{"spool", "fsync_interval_ms", "", "fsync = \"interval\": how often", restart}, CEFD_FIELD(spool.fsync_interval_ms)},
        {{"spool", "max_bytes", "", "compressed batches at most", restart}, CEFD_FIELD(spool.max_bytes)},
        {{"spool", "when_full", "", "\"drop_oldest\", \"drop_newest\" or \"block\"", restart}, CEFD_ENUM(spool.when_full, "drop_oldest", "drop_newest", "block")},
        {{"spool", "segment_bytes", "", "bytes per segment file", restart}, CEFD_FIELD(spool.segment_bytes)},
        {{"spool", "block_timeout_ms", "", "when_full = \"block\": longest wait for space", restart}, CEFD_FIELD(spool.block_timeout_ms)},
        {{"spool", "overflow_memory_batches", "", "mode = \"overflow\": batches in memory before spilling", restart}, CEFD_FIELD(spool.overflow_memory_batches)},
        {{"spool", "max_corrupt_files", "corrupt_files_max", "damaged files kept in <dir>/corrupt/", restart}, CEFD_FIELD(spool.corrupt_files_max)},
        // [azure]
        {{"azure", "endpoint", "", "DCE or the DCR's logsIngestion endpoint", live}, CEFD_FIELD(azure.target.endpoint)},
        {{"azure", "dcr_id", "", "the DCR's immutableId", live}, CEFD_FIELD(azure.target.dcr_id)},
        {{"azure", "stream", "", "DCR stream for CommonSecurityLog rows", live}, CEFD_FIELD(azure.target.stream)},
        {{"azure", "syslog_stream", "", "DCR stream for Syslog rows", live}, CEFD_FIELD(azure.target.syslog_stream)},
        {{"azure", "auth", "", "how cefd gets its token", restart}, CEFD_ENUM(azure.auth, "client_secret", "client_certificate", "managed_identity", "workload_identity", "arc", "none")},
        {{"azure", "authority_host", "", "Entra ID authority", live}, CEFD_FIELD(azure.authority_host)},
        {{"azure", "tenant_id", "", "the app's tenant", live}, CEFD_FIELD(azure.tenant_id)},
        {{"azure", "client_id", "", "the app (or managed identity) client id", live}, CEFD_FIELD(azure.client_id)},
        {{"azure", "client_secret", "", "inline secret (the config must then be chmod 600)", live}, CEFD_FIELD(azure.client_secret)},
        {{"azure", "client_secret_file", "", "file holding the secret (chmod 600); re-read on SIGHUP", live}, CEFD_FIELD(azure.client_secret_file)},
        {{"azure", "client_certificate_file", "", "auth = \"client_certificate\": PEM certificate", live}, CEFD_FIELD(azure.client_certificate_file)},
        {{"azure", "client_key_file", "", "its PEM RSA key; \"\" = in client_certificate_file", live}, CEFD_FIELD(azure.client_key_file)},
        {{"azure", "identity_endpoint", "", "auth = \"arc\": the identity endpoint", live}, CEFD_FIELD(azure.identity_endpoint)},
        {{"azure", "arc_token_dir", "", "auth = \"arc\": the only directory a key file is read from", restart}, CEFD_FIELD(azure.arc_token_dir)},
        {{"azure", "scope", "", "token scope", live}, CEFD_FIELD(azure.scope)},
        {{"azure", "imds_endpoint", "", "managed identity token endpoint", live}, CEFD_FIELD(azure.imds_endpoint)},
        {{"azure", "audience", "", "resource for managed-identity tokens", live}, CEFD_FIELD(azure.audience)},
        {{"azure", "ca_file", "", "extra CA bundle (PEM)", restart}, CEFD_FIELD(azure.ca_file)},
        {{"azure", "proxy", "", "HTTPS proxy URL", restart}, CEFD_FIELD(azure.proxy)},
        {{"azure", "max_in_flight", "", "concurrent requests", restart}, CEFD_FIELD(azure.max_in_flight)},
        {{"azure", "connect_timeout_ms", "", "per request", restart}, CEFD_FIELD(azure.connect_timeout_ms)},
        {{"azure", "request_timeout_ms", "", "per request", restart}, CEFD_FIELD(azure.request_timeout_ms)},
        {{"azure", "dead_letter_dir", "", "batches Azure refused for good", restart}, CEFD_FIELD(azure.dead_letter_dir)},
        {{"azure", "drain_timeout_ms", "", "on shutdown, longest wait for delivery", restart}, CEFD_FIELD(azure.drain_timeout_ms)},
        {{"azure", "retry_initial_ms", "", "first retry delay", restart}, CEFD_FIELD(azure.retry_initial_ms)},
        {{"azure", "retry_max_ms", "", "cap for that delay", restart}, CEFD_FIELD(azure.retry_max_ms)},
        {{"azure", "forbidden_retry_window_ms", "", "retry 403 this long before dead-lettering", restart}, CEFD_FIELD(azure.forbidden_retry_window_ms)},
        {{"azure", "targets", "", "[[azure.targets]]: more targets, by weight", live}, TargetsField{}},
        // [metrics]
        {{"metrics", "listen", "", "/metrics, /healthz, /readyz; \"\" = off", restart}, CEFD_FIELD(metrics.listen)},
        {{"metrics", "log_interval_s", "", "a one-line counter summary every N seconds; 0 = never", live}, CEFD_FIELD(metrics.log_interval_s)},
        {{"metrics", "max_connections", "", "open at once", restart}, CEFD_FIELD(metrics.max_connections), 1, 4'096},
        {{"metrics", "read_timeout_ms", "", "to send a request, and again to read the answer", restart}, CEFD_FIELD(metrics.read_timeout_ms), 100, 60'000},
        {{"metrics", "max_ready_backlog_batches", "ready_backlog_batches_max", "/readyz \"send\" fails when delivery failed and this many wait", restart}, CEFD_FIELD(metrics.ready_backlog_batches_max), 1, 100'000'000},
        // [capture]
        {{"capture", "dir", "", "raw received messages to zstd files here; \"\" = off", restart}, CEFD_FIELD(capture.dir)},
        {{"capture", "max_bytes", "", "all capture files together", restart}, CEFD_FIELD(capture.max_bytes)},
        {{"capture", "rotate_bytes", "", "a new file after this many compressed bytes", restart}, CEFD_FIELD(capture.rotate_bytes)},
        {{"capture", "queue_bytes", "", "each lane's queue to the capture thread", restart}, CEFD_FIELD(capture.queue_bytes)},
    };
    return table;
}

#undef CEFD_FIELD
#undef CEFD_ENUM

constexpr std::string_view known_tables[] = {"runtime", "receive", "parse", "dedupe", "batch",
                                             "spool", "azure", "metrics", "capture"};

std::string toml_string(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

/// Reads one key of the table into `config`, under its name or its alias (not both).
void read_key(TableReader& r, const Key& key, Config& config, ConfigErrors& errors) {
    std::string_view name = key.info.name;
    if (!key.info.alias.empty() && r.has(key.info.alias)) {
        if (r.has(key.info.name)) {
            r.mark_used(key.info.alias);
            errors.add(r.full(key.info.name), "set it or its old name " + std::string(key.info.alias) + ", not both");
            return;
        }
        name = key.info.alias;  // messages are renamed to the documented name afterwards
    }
    if (!r.has(name)) return;
    std::visit(
        [&]<class F>(const F& field) {
            if constexpr (std::is_same_v<F, TargetsField>) {
                // read_azure_extras()
            } else if constexpr (std::is_same_v<F, EnumField>) {
                std::uint8_t& out = field.ref(config);
                r.read_enum(name, out, field.names);
            } else if constexpr (std::is_same_v<F, Secret& (*)(Config&)>) {
                r.read_secret(name, field(config));
            } else {
                auto& out = field(config);
                using T = std::remove_reference_t<decltype(out)>;
                if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
                    T value = out;
                    const std::size_t before = errors.list().size();
                    r.read(name, value);
                    if (errors.list().size() != before) return;
                    if (key.max >= key.min)
                        errors.check_range<std::int64_t>(r.full(name), static_cast<std::int64_t>(value), key.min, key.max);
                    out = value;
                } else {
                    r.read(name, out);
                }
            }
        },
        key.field);
}

void read_table(const toml::table& root, std::string_view table, Config& config, ConfigErrors& errors,
                const std::function<void(TableReader&, const toml::table*)>& extras = {}) {
    const toml::table* node = subtable(root, table, errors);
    TableReader r(node, std::string(table), errors);
    for (const Key& key : keys())
        if (key.info.table == table) read_key(r, key, config, errors);
    if (extras) extras(r, node);
    r.finish();
}

void read_target(TableReader& r, AzureTarget& t) {
    r.read("endpoint", t.endpoint);
    r.read("dcr_id", t.dcr_id);
    r.read("stream", t.stream);
    r.read("syslog_stream", t.syslog_stream);
}

/// True when `path` can be read by users other than its owner and group.
bool world_readable(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IROTH) != 0;
}

/// "errno 13: Permission denied", for messages about files.
std::string errno_text(int error) { return "errno " + std::to_string(error) + ": " + std::strerror(error); }

/// Reads azure.client_secret_file. Each way it can fail gets its own message, with the errno
/// and what to do, because the operator only sees this text.
std::optional<std::string> read_secret_file(const std::string& path, ConfigErrors& e) {
    constexpr std::string_view key = "azure.client_secret_file";
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        const int error = errno;
        if (error == ENOENT) {
            e.add(key, path + " does not exist (" + errno_text(error) +
                           "): write the client secret into it and chmod 600 it");
        } else if (error == EACCES) {
            // A directory on the way is not searchable by the user cefd runs as.
            e.add(key, "cannot reach " + path + " (" + errno_text(error) +
                           "): a directory on its path is not searchable by uid " + std::to_string(::geteuid()));
        } else {
            e.add(key, "cannot stat " + path + " (" + errno_text(error) + ")");
        }
        return std::nullopt;
    }
    if (S_ISDIR(st.st_mode)) {
        e.add(key, path + " is a directory: name the file that holds the secret");
        return std::nullopt;
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int error = errno;
        if (error == EACCES) {
            e.add(key, "cannot read " + path + " (" + errno_text(error) + "): it must be readable by uid " +
                           std::to_string(::geteuid()) + ", the user cefd runs as (chown it, then chmod 600)");
        } else {
            e.add(key, "cannot open " + path + " (" + errno_text(error) + ")");
        }
        return std::nullopt;
    }
    std::string secret;
    char buffer[4096];
    ssize_t n = 0;
    while ((n = ::read(fd, buffer, sizeof buffer)) > 0 && secret.size() < 65'536)
        secret.append(buffer, static_cast<std::size_t>(n));
    const int read_error = n < 0 ? errno : 0;
    ::close(fd);
    if (read_error != 0) {
        e.add(key, "cannot read " + path + " (" + errno_text(read_error) + ")");
        return std::nullopt;
    }
    if ((st.st_mode & S_IROTH) != 0) {
        e.add(key, path + " is readable by other users: chmod 600 it");
        return std::nullopt;
    }
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r' || secret.back() == ' '))
        secret.pop_back();
    if (secret.empty()) {
        e.add(key, path + " is empty");
        return std::nullopt;
    }
    return secret;
}

/// [azure] beyond its plain keys: [[azure.targets]] and the secret rules.
void read_azure_extras(TableReader& r, const toml::table* table, AzureConfig& c, ConfigErrors& e,
                       const std::string& origin) {
    if (r.has("targets")) {
        const toml::array* targets = table->get("targets")->as_array();
        r.mark_used("targets");
        if (targets == nullptr || !targets->is_array_of_tables()) {
            e.add("azure.targets", "must be an array of tables ([[azure.targets]])");
        } else {
            int index = 0;
            for (const toml::node& node : *targets) {
                TableReader tr(node.as_table(), "azure.targets[" + std::to_string(index++) + "]", e);
                AzureTarget target;
                read_target(tr, target);
                tr.read("weight", target.weight);
                tr.read("max_in_flight", target.max_in_flight);
                c.extra_targets.push_back(std::move(target));
            }
        }
    }

    // Secrets: an inline secret makes the config itself a secret file.
    if (!c.client_secret.empty() && origin.front() != '<' && world_readable(origin))
        e.add("azure.client_secret", "this config holds a secret but " + origin +
                                         " is readable by other users: chmod 600 it, or use client_secret_file");
    if (!c.client_secret_file.empty()) {
        if (!c.client_secret.empty()) e.add("azure.client_secret_file", "set client_secret or client_secret_file, not both");
        if (auto secret = read_secret_file(c.client_secret_file, e)) c.client_secret = Secret(std::move(*secret));
    }
}

}  // namespace

// Ranges of [runtime] and [metrics] are in the key table (keys()); these are the other rules.
// metrics.max_connections is at most 4096: each connection holds a descriptor and an 8 KiB buffer.
void RuntimeConfig::validate(ConfigErrors& errors) const {
    errors.check("runtime.ring_bytes", std::has_single_bit(ring_bytes) && ring_bytes >= (1U << 20),
                 "must be a power of two of at least 1048576");
}

void MetricsConfig::validate(ConfigErrors& errors) const {
    if (listen.empty()) return;
    const auto colon = listen.rfind(':');
    errors.check("metrics.listen", colon != std::string::npos && colon + 1 < listen.size(),
                 "must be host:port, e.g. \"127.0.0.1:9514\" (empty turns the endpoint off)");
}

const std::vector<ConfigKey>& config_keys() {
    static const std::vector<ConfigKey> list = [] {
        std::vector<ConfigKey> out;
        for (const Key& key : keys()) out.push_back(key.info);
        return out;
    }();
    return list;
}

namespace {

const Key& key_of(const ConfigKey& info) {
    for (const Key& key : keys())
        if (key.info.table == info.table && key.info.name == info.name) return key;
    CEFD_ASSERT(false && "a ConfigKey that is not in the table");
    return keys().front();
}

std::string targets_text(const std::vector<AzureTarget>& targets) {
    std::string out = "[";
    for (const AzureTarget& t : targets) {
        out += out.size() > 1 ? ", " : "";
        out += "{endpoint = " + toml_string(t.endpoint) + ", dcr_id = " + toml_string(t.dcr_id) +
               ", stream = " + toml_string(t.stream) + ", syslog_stream = " + toml_string(t.syslog_stream) +
               ", weight = " + std::to_string(t.weight) + ", max_in_flight = " + std::to_string(t.max_in_flight) + "}";
    }
    return out + "]";
}

}  // namespace

std::string config_value_text(const Config& config, const ConfigKey& info) {
    Config& c = const_cast<Config&>(config);  // the accessors are shared with the reader; nothing is written
    return std::visit(
        [&]<class F>(const F& field) -> std::string {
            if constexpr (std::is_same_v<F, TargetsField>) {
                return targets_text(config.azure.extra_targets);
            } else if constexpr (std::is_same_v<F, EnumField>) {
                const std::uint8_t index = field.ref(c);
                return index < field.names.size() ? toml_string(field.names[index]) : std::to_string(index);
            } else if constexpr (std::is_same_v<F, Secret& (*)(Config&)>) {
                return field(c).empty() ? "\"\"" : "\"***\"";
            } else {
                const auto& value = field(c);
                using T = std::remove_cvref_t<decltype(value)>;
                if constexpr (std::is_same_v<T, bool>) return value ? "true" : "false";
                else if constexpr (std::is_integral_v<T>) return std::to_string(value);
                else if constexpr (std::is_same_v<T, std::string>) return toml_string(value);
                else {
                    std::string out = "[";
                    for (const auto item : value) out += (out.size() > 1 ? ", " : "") + std::to_string(item);
                    return out + "]";
                }
            }
        },
        key_of(info).field);
}

std::vector<ConfigChange> reload_changes(const Config& running, const Config& file) {
    std::vector<ConfigChange> changes;
    for (const ConfigKey& key : config_keys()) {
        std::string before = config_value_text(running, key);
        std::string after = config_value_text(file, key);
        if (key.table == "azure" && key.name == "client_secret") {
            // Printed as "***" either way; a new secret (inline or from client_secret_file) is a change.
            if (running.azure.client_secret.reveal() == file.azure.client_secret.reveal()) continue;
            before = "\"*** (old)\"";
            after = "\"*** (new)\"";
        } else if (before == after) {
            continue;
        }
        changes.push_back(ConfigChange{&key, std::move(before), std::move(after)});
    }
    return changes;
}

void copy_config_value(Config& to, const Config& from, const ConfigKey& info) {
    Config& source = const_cast<Config&>(from);  // read only, through the shared accessors
    std::visit(
        [&]<class F>(const F& field) {
            if constexpr (std::is_same_v<F, TargetsField>) to.azure.extra_targets = from.azure.extra_targets;
            else if constexpr (std::is_same_v<F, EnumField>) field.ref(to) = field.ref(source);
            else field(to) = field(source);
        },
        key_of(info).field);
}

std::optional<Config> load_config_text(const std::string& text, const std::string& origin, ConfigErrors& errors,
                                       ConfigScope scope) {
    toml::table root;
    try {
        root = toml::parse(text, origin);
    } catch (const toml::parse_error& error) {
        const auto& where = error.source().begin;
        errors.add(origin + ":" + std::to_string(where.line) + ":" + std::to_string(where.column),
                   std::string(error.description()));
        return std::nullopt;
    }
    Config config;
    config.origin = origin;
    for (const auto& [key, node] : root) {
        bool found = false;
        for (auto name : known_tables) found = found || key.str() == name;
        if (!found) errors.add(key.str(), "unknown table");
    }
    const auto rename_aliases = [&errors] {
        for (const Key& key : keys())
            if (!key.info.alias.empty())
                errors.rename_key(std::string(key.info.table) + "." + std::string(key.info.alias), key.info.full_name());
    };
    if (scope == ConfigScope::parse) {
        // `cefd parse` runs no pipeline: [azure], [spool] and the rest may be incomplete or
        // absent, and their secret files unreadable by the user trying a parse.
        read_table(root, "receive", config, errors);
        read_table(root, "parse", config, errors);
        config.receive.validate(errors);
        config.parse.validate(errors);
        rename_aliases();
        if (!errors.empty()) return std::nullopt;
        return config;
    }
    for (std::string_view table : known_tables) {
        if (table == "azure") {
            read_table(root, table, config, errors, [&](TableReader& r, const toml::table* node) {
                read_azure_extras(r, node, config.azure, errors, origin);
            });
        } else {
            read_table(root, table, config, errors);
        }
    }

    config.runtime.validate(errors);
    config.receive.validate(errors);
    config.parse.validate(errors);
    config.dedupe.validate(errors);
    config.batch.validate(errors);
    config.spool.validate(errors);
    config.azure.validate(errors);
    config.metrics.validate(errors);
    config.capture.validate(errors);
    // Checks that span tables.
    if (config.azure.drain_timeout_ms >= config.runtime.shutdown_timeout_ms)
        errors.add("azure.drain_timeout_ms", "must be less than runtime.shutdown_timeout_ms (" +
                                                 std::to_string(config.runtime.shutdown_timeout_ms) +
                                                 "), which bounds the whole shutdown");
    rename_aliases();
    if (!errors.empty()) return std::nullopt;
    return config;
}

std::optional<Config> load_config_file(const std::string& path, ConfigErrors& errors, ConfigScope scope) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        errors.add(path, "cannot open the config file");
        return std::nullopt;
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    return load_config_text(buffer.str(), path, errors, scope);
}

}  // namespace cefd
