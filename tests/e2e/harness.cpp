#include "tests/e2e/harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <simdjson.h>
#include <stdexcept>

namespace cefd::test {

std::string cefd_binary() { return binary_path("engine/pipeline/cefd"); }
std::string standin_binary() { return binary_path("tools/azure_standin/cefd-azure-standin"); }
std::string loadgen_binary() { return binary_path("tools/loadgen/cefd-loadgen"); }

AzureStandin::AzureStandin(const TempDir& dir, std::vector<std::string> extra_args) : dir_(dir.path()) {
    std::vector<std::string> argv = {standin_binary(), "--tls", "--port", "0", "--out", rows_path(),
                                     "--cert-dir", dir_, "--ready-file", dir_ + "/standin.url"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    process_ = std::make_unique<Process>(argv, dir_, "standin");
    if (!wait_until(std::chrono::seconds(20), [&] { return !read_file(dir_ + "/standin.url").empty(); }))
        throw std::runtime_error("stand-in did not start: " + process_->err());
    url_ = read_file(dir_ + "/standin.url");
    while (!url_.empty() && (url_.back() == '\n' || url_.back() == '\r')) url_.pop_back();
}

std::set<std::string> AzureStandin::messages() const {
    std::set<std::string> out;
    for (const auto& row : rows()) {
        const auto found = row.find("Message");
        if (found != row.end()) out.insert(found->second);
    }
    return out;
}

CefdOptions stalling_options(const char* engine) {
    CefdOptions options;
    options.workers = 1;
    options.ring_bytes = 1 << 20;
    options.receive_extra = std::string("engine = \"") + engine + "\"\n";
    options.batch_extra = "max_bytes = 16384\n";
    options.spool_extra = "segment_bytes = 4096\nmax_bytes = 8192\nwhen_full = \"block\"\nblock_timeout_ms = 600000\n";
    return options;
}

sockaddr_in loopback(int port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

std::string tls_receive_lines(const TempDir& dir, int tls_port) {
    return "tls_port = " + std::to_string(tls_port) + "\ntls_cert_file = \"" + dir.file("server.pem") +
           "\"\ntls_key_file = \"" + dir.file("server.key") + "\"\n";
}

std::vector<std::map<std::string, std::string>> AzureStandin::rows() const {
    std::vector<std::map<std::string, std::string>> out;
    simdjson::dom::parser parser;
    for (const auto& line : read_complete_lines(rows_path())) {
        if (line.empty()) continue;
        simdjson::dom::element row;
        if (parser.parse(line).get(row) != simdjson::SUCCESS) {
            out.push_back({{"__invalid_json__", line}});
            continue;
        }
        std::map<std::string, std::string> columns;
        for (auto [key, value] : row.get_object()) {
            std::string text;
            if (value.is_string()) text = std::string(std::string_view(value.get_string()));
            else text = simdjson::minify(value);
            columns[std::string(key)] = text;
        }
        out.push_back(std::move(columns));
    }
    return out;
}

std::size_t AzureStandin::row_count() const {
    std::size_t n = 0;
    for (const auto& line : read_complete_lines(rows_path())) n += line.empty() ? 0 : 1;
    return n;
}

std::string AzureStandin::stats() const {
    std::string out;
    run_command("curl -s --cacert " + ca_file() + " " + url_ + "/stats", &out);
    return out;
}

Cefd::Cefd(const TempDir& dir, const AzureStandin& azure, CefdOptions options)
    : port_(free_port()), metrics_port_(free_port(false)), config_path_(dir.file("cefd.toml")) {
    write_file(dir.file("client-secret"), "cefd-test-secret\n", 0600);
    std::string toml;
    toml += "[runtime]\nworkers = " + std::to_string(options.workers) + "\nring_bytes = " +
            std::to_string(options.ring_bytes) + "\n";
    toml += "[receive]\nlisten = \"127.0.0.1\"\nudp_port = " + std::to_string(port_) +
            "\ntcp_port = " + std::to_string(port_) + "\n" + options.receive_extra + "\n";
    toml += "[dedupe]\nwindow_ms = " + std::to_string(options.dedupe_window_ms) + "\n";
    toml += "[batch]\nlinger_ms = " + std::to_string(options.linger_ms) + "\n" + options.batch_extra + "\n";
    toml += "[spool]\ndir = \"" + dir.file("spool") + "\"\n" + options.spool_extra + "\n";
    toml += "[azure]\nendpoint = \"" + azure.url() + "\"\n";
    toml += "dcr_id = \"dcr-00000000000000000000000000000000\"\nstream = \"Custom-CommonSecurityLog\"\n";
    toml += "auth = \"client_secret\"\nauthority_host = \"" + azure.url() + "\"\n";
    toml += "tenant_id = \"00000000-0000-0000-0000-000000000000\"\nclient_id = \"cefd-test-client\"\n";
    toml += "client_secret_file = \"" + dir.file("client-secret") + "\"\n";
    toml += "ca_file = \"" + azure.ca_file() + "\"\ndead_letter_dir = \"" + dir.file("dead-letter") + "\"\n";
    toml += options.azure_extra + "\n";
    toml += "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port_) + "\"\nlog_interval_s = 0\n";
    toml += options.extra_toml;
    write_file(config_path_, toml, 0600);
    process_ = std::make_unique<Process>(
        std::vector<std::string>{cefd_binary(), "run", "--config", config_path_}, dir.path(), "cefd");
    if (!wait_until(std::chrono::seconds(20), [&] { return process_->err().find("running") != std::string::npos; }))
        throw std::runtime_error("cefd did not start: " + process_->err());
}

Cefd::~Cefd() {
    if (process_->running()) process_->stop(SIGTERM, std::chrono::seconds(30));
}

int Cefd::stop() { return process_->stop(SIGTERM, std::chrono::seconds(60)); }

double Cefd::metric(const std::string& name) const {
    const std::string body = http_get(metrics_port_, "/metrics");
    double sum = 0;
    std::size_t pos = 0;
    while ((pos = body.find("\n" + name, pos)) != std::string::npos) {
        pos += 1;
        const std::size_t end = body.find('\n', pos);
        const std::string line = body.substr(pos, end - pos);
        const char next = line.size() > name.size() ? line[name.size()] : '\0';
        if (next == ' ' || next == '{') sum += std::atof(line.substr(line.rfind(' ') + 1).c_str());
    }
    return sum;
}

std::string http_get(int port, const std::string& path) {
    std::string out;
    run_command("curl -s http://127.0.0.1:" + std::to_string(port) + path, &out);
    return out;
}

}  // namespace cefd::test
