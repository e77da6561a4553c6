// tests/e2e/harness.h: the real binaries on loopback. AzureStandin runs tools/azure_standin over
// HTTPS with its generated CA; Cefd writes a config pointing at it and runs `cefd run`.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/support/support.h"

namespace cefd::test {

class AzureStandin {
public:
    explicit AzureStandin(const TempDir& dir, std::vector<std::string> extra_args = {});
    [[nodiscard]] const std::string& url() const { return url_; }
    [[nodiscard]] std::string ca_file() const { return dir_ + "/standin-ca.pem"; }
    [[nodiscard]] std::string rows_path() const { return dir_ + "/rows.jsonl"; }
    /// Every accepted row, parsed: column name -> value as text (numbers as written).
    [[nodiscard]] std::vector<std::map<std::string, std::string>> rows() const;
    [[nodiscard]] std::size_t row_count() const;
    /// The distinct Message values of every accepted row (a row sent twice counts once).
    [[nodiscard]] std::set<std::string> messages() const;
    /// GET /stats, raw JSON.
    [[nodiscard]] std::string stats() const;
    Process& process() { return *process_; }

private:
    std::string dir_;
    std::string url_;
    std::unique_ptr<Process> process_;
};

struct CefdOptions {
    std::string extra_toml;        // appended to the generated config (whole tables)
    std::string receive_extra;     // lines appended inside [receive]
    std::string azure_extra;       // lines appended inside [azure]
    int dedupe_window_ms = 0;      // off by default, so tests can send the same line twice
    int linger_ms = 100;
    int workers = 2;
    std::uint64_t ring_bytes = 4'194'304;
    std::string batch_extra;  // lines appended inside [batch]
    std::string spool_extra;  // lines appended inside [spool]
};

/// One lane with a 1 MiB ring, batches of 16 KiB and a spool of two 4 KiB segments that blocks
/// when full, on receive `engine`: once the stand-in is stopped, the worker blocks and the ring
/// fills (tests of backpressure and of the stop's drain).
CefdOptions stalling_options(const char* engine);

/// 127.0.0.1:port.
sockaddr_in loopback(int port);

/// [receive] lines for a TLS listener on `tls_port` with `dir`'s server.pem and server.key.
std::string tls_receive_lines(const TempDir& dir, int tls_port);

class Cefd {
public:
    Cefd(const TempDir& dir, const AzureStandin& azure, CefdOptions options = {});
    ~Cefd();
    [[nodiscard]] int port() const { return port_; }
    [[nodiscard]] int metrics_port() const { return metrics_port_; }
    [[nodiscard]] const std::string& config_path() const { return config_path_; }
    /// GET /metrics and return the value of one series (summed over labels when `labels` is empty).
    [[nodiscard]] double metric(const std::string& name) const;
    int stop();  // SIGTERM, wait; returns the exit code
    Process& process() { return *process_; }

private:
    int port_;
    int metrics_port_;
    std::string config_path_;
    std::unique_ptr<Process> process_;
};

std::string cefd_binary();
std::string standin_binary();
std::string loadgen_binary();
/// HTTP GET on loopback; returns the body ("" on failure).
std::string http_get(int port, const std::string& path);

}  // namespace cefd::test
