#include "engine/pipeline/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <bit>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include <toml++/toml.h>

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
    template <class E>
    void read_enum(std::string_view key, E& out, std::initializer_list<std::pair<std::string_view, E>> names) {
        const toml::node* node = take(key);
        if (node == nullptr) return;
        auto value = node->value<std::string>();
        std::string choices;
        for (const auto& [name, e] : names) {
            if (value && *value == name) {
                out = e;
                return;
            }
            choices += choices.empty() ? "" : ", ";
            choices += "\"" + std::string(name) + "\"";
        }
        errors_.add(full(key), "must be one of " + choices +
                                   (value ? " (got \"" + *value + "\")" : " (got a non-string)"));
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

void read_runtime(const toml::table& root, RuntimeConfig& c, ConfigErrors& e) {
    TableReader r(subtable(root, "runtime", e), "runtime", e);
    r.read("workers", c.workers);
    r.read("receive_cores", c.receive_cores);
    r.read("worker_cores", c.worker_cores);
    r.read("pin_threads", c.pin_threads);
    r.read("ring_bytes", c.ring_bytes);
    r.read("shutdown_timeout_ms", c.shutdown_timeout_ms);
}

void read_receive(const toml::table& root, ReceiveConfig& c, ConfigErrors& e) {
    TableReader r(subtable(root, "receive", e), "receive", e);
    r.read("listen", c.listen);
    r.read("udp_port", c.udp_port);
    r.read("tcp_port", c.tcp_port);
    r.read("datagram_bytes_max", c.datagram_bytes_max);
    r.read("buffers_per_core", c.buffers_per_core);
    r.read("rcvbuf_bytes", c.rcvbuf_bytes);
    r.read("max_frame_bytes", c.max_frame_bytes);
    r.read("tcp_max_connections", c.tcp_max_connections);
    r.read("tcp_max_connections_per_source", c.tcp_max_connections_per_source);
    r.read("tcp_idle_timeout_ms", c.tcp_idle_timeout_ms);
    r.read("tls_handshake_timeout_ms", c.tls_handshake_timeout_ms);
    r.read("tls_port", c.tls_port);
    r.read("tls_cert_file", c.tls_cert_file);
    r.read("tls_key_file", c.tls_key_file);
    r.read("tls_client_ca_file", c.tls_client_ca_file);
    using E = ReceiveConfig::Engine;
    r.read_enum("engine", c.engine, {{"auto", E::automatic}, {"io_uring", E::io_uring}, {"recvmmsg", E::recvmmsg}});
}

void read_parse(const toml::table& root, ParseConfig& c, ConfigErrors& e) {
    TableReader r(subtable(root, "parse", e), "parse", e);
    using N = ParseConfig::NonCef;
    r.read_enum("non_cef", c.non_cef, {{"drop", N::drop}, {"syslog_table", N::syslog_table}});
    r.read("collector_host_name", c.collector_host_name);
    r.read("field_bytes_max", c.field_bytes_max);
    r.read("additional_extensions_trailing_separator", c.additional_extensions_trailing_separator);
}

void read_dedupe(const toml::table& root, DedupeConfig& c, ConfigErrors& e) {
    TableReader r(subtable(root, "dedupe", e), "dedupe", e);
    r.read("window_ms", c.window_ms);
    r.read("max_entries", c.max_entries);
}

void read_batch(const toml::table& root, BatchConfig& c, ConfigErrors& e) {
    TableReader r(subtable(root, "batch", e), "batch", e);
    r.read("max_bytes", c.max_bytes);
    r.read("linger_ms", c.linger_ms);
    r.read("gzip_level", c.gzip_level);
    using C = BatchConfig::Compressor;
    r.read_enum("compressor", c.compressor, {{"auto", C::automatic}, {"igzip", C::igzip}, {"libdeflate", C::libdeflate}});
}

void read_spool(const toml::table& root, SpoolConfig& c, ConfigErrors& e) {
    TableReader r(subtable(root, "spool", e), "spool", e);
    r.read("dir", c.dir);
    using M = SpoolConfig::Mode;
    r.read_enum("mode", c.mode, {{"always", M::always}, {"overflow", M::overflow}});
    using F = SpoolConfig::Fsync;
    r.read_enum("fsync", c.fsync, {{"batch", F::batch}, {"interval", F::interval}, {"never", F::never}});
    r.read("fsync_interval_ms", c.fsync_interval_ms);
    r.read("max_bytes", c.max_bytes);
    using W = SpoolConfig::WhenFull;
    r.read_enum("when_full", c.when_full, {{"drop_oldest", W::drop_oldest}, {"drop_newest", W::drop_newest}, {"block", W::block}});
    r.read("segment_bytes", c.segment_bytes);
    r.read("block_timeout_ms", c.block_timeout_ms);
    r.read("overflow_memory_batches", c.overflow_memory_batches);
    r.read("corrupt_files_max", c.corrupt_files_max);
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

void read_azure(const toml::table& root, AzureConfig& c, ConfigErrors& e, const std::string& origin) {
    const toml::table* table = subtable(root, "azure", e);
    TableReader r(table, "azure", e);
    read_target(r, c.target);
    using A = AzureConfig::Auth;
    r.read_enum("auth", c.auth, {{"client_secret", A::client_secret}, {"client_certificate", A::client_certificate},
                                 {"managed_identity", A::managed_identity}, {"workload_identity", A::workload_identity},
                                 {"arc", A::arc}, {"none", A::none}});
    r.read("authority_host", c.authority_host);
    r.read("tenant_id", c.tenant_id);
    r.read("client_id", c.client_id);
    r.read_secret("client_secret", c.client_secret);
    r.read("client_secret_file", c.client_secret_file);
    r.read("client_certificate_file", c.client_certificate_file);
    r.read("client_key_file", c.client_key_file);
    r.read("identity_endpoint", c.identity_endpoint);
    r.read("arc_token_dir", c.arc_token_dir);
    r.read("scope", c.scope);
    r.read("imds_endpoint", c.imds_endpoint);
    r.read("audience", c.audience);
    r.read("ca_file", c.ca_file);
    r.read("proxy", c.proxy);
    r.read("max_in_flight", c.max_in_flight);
    r.read("connect_timeout_ms", c.connect_timeout_ms);
    r.read("request_timeout_ms", c.request_timeout_ms);
    r.read("dead_letter_dir", c.dead_letter_dir);
    r.read("drain_timeout_ms", c.drain_timeout_ms);
    r.read("retry_initial_ms", c.retry_initial_ms);
    r.read("retry_max_ms", c.retry_max_ms);
    r.read("forbidden_retry_window_ms", c.forbidden_retry_window_ms);

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

void read_metrics(const toml::table& root, MetricsConfig& c, ConfigErrors& e) {
    TableReader r(subtable(root, "metrics", e), "metrics", e);
    r.read("listen", c.listen);
    r.read("log_interval_s", c.log_interval_s);
    r.read("max_connections", c.max_connections);
    r.read("read_timeout_ms", c.read_timeout_ms);
    r.read("ready_backlog_batches_max", c.ready_backlog_batches_max);
}

void read_capture(const toml::table& root, CaptureConfig& c, ConfigErrors& e) {
    TableReader r(subtable(root, "capture", e), "capture", e);
    r.read("dir", c.dir);
    r.read("max_bytes", c.max_bytes);
    r.read("rotate_bytes", c.rotate_bytes);
    r.read("queue_bytes", c.queue_bytes);
}

}  // namespace

void RuntimeConfig::validate(ConfigErrors& errors) const {
    errors.check_range<std::uint32_t>("runtime.workers", workers, 0, 256);
    errors.check("runtime.ring_bytes", std::has_single_bit(ring_bytes) && ring_bytes >= (1U << 20),
                 "must be a power of two of at least 1048576");
    errors.check_range<std::uint32_t>("runtime.shutdown_timeout_ms", shutdown_timeout_ms, 100, 600'000);
}

void MetricsConfig::validate(ConfigErrors& errors) const {
    // 4096: each connection holds a descriptor and an 8 KiB request buffer.
    errors.check_range<std::uint32_t>("metrics.max_connections", max_connections, 1, 4'096);
    errors.check_range<std::uint32_t>("metrics.read_timeout_ms", read_timeout_ms, 100, 60'000);
    errors.check_range<std::uint32_t>("metrics.ready_backlog_batches_max", ready_backlog_batches_max, 1, 100'000'000);
    if (listen.empty()) return;
    const auto colon = listen.rfind(':');
    errors.check("metrics.listen", colon != std::string::npos && colon + 1 < listen.size(),
                 "must be host:port, e.g. \"127.0.0.1:9514\" (empty turns the endpoint off)");
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
    static constexpr std::string_view known[] = {"runtime", "receive", "parse", "dedupe", "batch",
                                                 "spool", "azure", "metrics", "capture"};
    for (const auto& [key, node] : root) {
        bool found = false;
        for (auto name : known) found = found || key.str() == name;
        if (!found) errors.add(key.str(), "unknown table");
    }
    if (scope == ConfigScope::parse) {
        // `cefd parse` runs no pipeline: [azure], [spool] and the rest may be incomplete or
        // absent, and their secret files unreadable by the user trying a parse.
        read_receive(root, config.receive, errors);
        read_parse(root, config.parse, errors);
        config.receive.validate(errors);
        config.parse.validate(errors);
        if (!errors.empty()) return std::nullopt;
        return config;
    }
    read_runtime(root, config.runtime, errors);
    read_receive(root, config.receive, errors);
    read_parse(root, config.parse, errors);
    read_dedupe(root, config.dedupe, errors);
    read_batch(root, config.batch, errors);
    read_spool(root, config.spool, errors);
    read_azure(root, config.azure, errors, origin);
    read_metrics(root, config.metrics, errors);
    read_capture(root, config.capture, errors);

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
