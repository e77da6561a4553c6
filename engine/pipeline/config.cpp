// Reading cefd.toml: TOML into Config through the key table (config_keys.h), unknown keys and
// aliases, the secret file rules, then each stage's validate(). Reload diffs: config_reload.cpp.
#include "engine/pipeline/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <bit>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <set>
#include <sstream>
#include <utility>
#include <variant>

#include <toml++/toml.h>

#include "engine/log.h"
#include "engine/pipeline/check_startup.h"
#include "engine/pipeline/config_keys.h"

namespace cefd {

using namespace config_detail;

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

constexpr std::string_view known_tables[] = {"runtime", "receive", "parse", "dedupe", "batch",
                                             "spool", "azure", "metrics", "capture"};

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

/// A hash of the named files' bytes (a missing or unreadable one counts as empty).
std::uint64_t files_hash(std::initializer_list<std::string> paths) {
    std::uint64_t hash = 1469598103934665603ULL;
    for (const std::string& path : paths) {
        if (path.empty()) continue;
        std::ifstream in(path, std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        hash = (hash ^ std::hash<std::string>{}(bytes)) * 1099511628211ULL;
    }
    return hash;
}

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
    // Not checked here (the sender loads and checks them): only remembered, for reload.
    if (!c.client_certificate_file.empty())
        c.certificate_files_hash = files_hash({c.client_certificate_file, c.client_key_file});
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

namespace {

/// Could two TCP listeners on these hosts collide? Equal, a wildcard, or localhost's names.
bool hosts_overlap(const std::string& a, const std::string& b) {
    const auto wildcard = [](const std::string& h) { return h.empty() || h == "0.0.0.0" || h == "::"; };
    const auto local = [](const std::string& h) { return h == "localhost" || h == "127.0.0.1" || h == "::1"; };
    return a == b || wildcard(a) || wildcard(b) || (local(a) && local(b));
}

/// metrics.listen must not take a port a receive TCP/TLS listener binds on an overlapping address:
/// the second bind would fail at start (or, with SO_REUSEPORT, share the port and mix the streams).
/// The listeners are check-config's own list (listeners_of); tcp_port against tls_port is
/// ReceiveConfig::validate's.
void check_metrics_port(const Config& config, ConfigErrors& errors) {
    const std::vector<Listener> listeners = listeners_of(config);
    const auto metrics =
        std::find_if(listeners.begin(), listeners.end(), [](const Listener& l) { return l.key == "metrics.listen"; });
    if (metrics == listeners.end()) return;
    for (const Listener& other : listeners)
        if (&other != &*metrics && !other.udp && other.port == metrics->port &&
            hosts_overlap(metrics->host, other.host))
            errors.add("metrics.listen", "port " + std::to_string(other.port) + " is also " + other.key + " on " +
                                             other.host + ": give the metrics endpoint its own port");
}

}  // namespace

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
    // + 1.2 s: counting what the receive drain left (0.2 s) and io_uring's cancels (up to 1 s).
    else if (std::uint64_t{config.receive.drain_timeout_ms} + config.azure.drain_timeout_ms + 1'200 >=
             config.runtime.shutdown_timeout_ms)
        errors.warn("receive.drain_timeout_ms",
                    "with azure.drain_timeout_ms it reaches runtime.shutdown_timeout_ms (" +
                        std::to_string(config.runtime.shutdown_timeout_ms) +
                        "): a stop that needs both in full is cut short (what is spooled waits for the next start)");
    // deploy/cefd.service gives a stop TimeoutStopSec=60, then SIGKILL: a longer drain is cut.
    if (config.runtime.shutdown_timeout_ms > 55'000)
        errors.warn("runtime.shutdown_timeout_ms",
                    std::to_string(config.runtime.shutdown_timeout_ms) +
                        " ms: the shipped unit kills cefd 60 s after SIGTERM (TimeoutStopSec=60), cutting the "
                        "drain short; raise TimeoutStopSec in a drop-in to at least this plus 5 s");
    check_metrics_port(config, errors);
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
