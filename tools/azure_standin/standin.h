// tools/azure_standin/standin.h: the stand-in server. A local imitation of the three Azure
// services cefd talks to: Entra ID's client-credentials token endpoint, the IMDS managed
// identity endpoint, and the Logs Ingestion API. Every accepted row is appended to --out as one
// compact JSON line; every refusal is counted by reason in /stats.
//
// Lifecycle: Standin::create() makes the certificate (--tls), opens --out and binds the port;
// run() serves until stop() (any thread, e.g. a signal thread). Handlers run on a pool of
// `threads` httplib threads; counters are atomics, --out is appended under one mutex with one
// write(2) per request, so rows of two requests never interleave.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/result.h"
#include "tools/azure_standin/assertion_check.h"
#include "tools/azure_standin/ingest.h"

namespace httplib {
class Server;
struct Request;
struct Response;
class ContentReader;
}  // namespace httplib

namespace cefd::standin {

/// The knobs that POST /control may change at run time. 0 turns a fault off.
struct Knobs {
    std::uint64_t token_lifetime_s = 3600;
    std::uint64_t max_body_bytes = 1'048'576;  // wire Content-Length limit (413)
    std::uint64_t max_json_bytes = 1'048'576;  // decompressed limit (413)
    std::uint64_t fault_429_every = 0;
    std::uint64_t retry_after_s = 1;
    std::uint64_t fault_500_every = 0;
    std::uint64_t fault_drop_every = 0;         // store, then close without answering
    std::uint64_t fault_drop_before_every = 0;  // close without storing
    std::uint64_t outage_s = 0;                 // 503 for everything for this long
};

struct StandinOptions {
    std::string listen_address = "127.0.0.1";
    int port = 0;
    bool tls = false;
    std::string cert_dir;  // default: the directory of out_path
    std::string out_path;
    std::string ready_file;
    std::string tenant_id = "00000000-0000-0000-0000-000000000000";
    std::string client_id = "cefd-test-client";
    std::string client_secret = "cefd-test-secret";
    std::vector<std::string> dcr_ids;  // default: dcr-000...0
    std::vector<std::string> streams;  // default: Custom-CommonSecurityLog, Custom-Syslog
    /// DCRs that answer 403 OperationFailed (known, but the identity may not write to them).
    std::vector<std::string> forbidden_dcrs;
    /// The monitor resource: IMDS/Arc `resource`, and the scope `<audience>/.default` or
    /// `<audience>//.default`. https://monitor.azure.us imitates US Gov, and so on.
    std::string audience = "https://monitor.azure.com";
    /// PEM certificate: client assertions must be signed by its key (empty: not checked).
    std::string client_cert_file;
    /// Serves the Azure Arc identity endpoint (GET /arc/metadata/identity/oauth2/token); its
    /// challenge key files are written here. Empty: no Arc endpoint.
    std::string arc_key_dir;
    std::uint32_t threads = 8;
    /// One line "<rows> <unix ns>\n" per accepted request, written right after its rows under
    /// the same mutex, so the n-th line covers the next <rows> lines of --out. Empty: none.
    std::string accept_log_path;
    /// Benchmark mode: only every bench_check_every-th request gets the full checks; the others
    /// are decompressed and split into rows (BodyChecker::split_rows). 0: strict (the default).
    std::uint64_t bench_check_every = 0;
    Knobs knobs;
};

enum class Fault : std::uint8_t { outage, http_429, http_500, drop, drop_before, count_ };
inline constexpr std::size_t fault_count = static_cast<std::size_t>(Fault::count_);

class Standin {
public:
    static Result<std::unique_ptr<Standin>> create(StandinOptions options);
    ~Standin();
    Standin(const Standin&) = delete;
    Standin& operator=(const Standin&) = delete;

    /// "http://127.0.0.1:41234" or "https://[::1]:41234".
    [[nodiscard]] const std::string& base_url() const noexcept { return base_url_; }
    /// Serves until stop(). Returns false if the listener failed.
    bool run();
    void stop();

private:
    explicit Standin(StandinOptions options);

    void on_token(const httplib::Request& request, httplib::Response& response);
    void on_imds(const httplib::Request& request, httplib::Response& response);
    void on_arc(const httplib::Request& request, httplib::Response& response);
    /// The IMDS/Arc checks shared by both (Metadata header, api-version, resource); false when refused.
    bool check_identity_request(const httplib::Request& request, httplib::Response& response, const char* what);
    void answer_identity_token(httplib::Response& response);
    void on_ingest(const httplib::Request& request, httplib::Response& response,
                   const httplib::ContentReader& reader);
    void on_control(const httplib::Request& request, httplib::Response& response);
    void on_stats(const httplib::Request& request, httplib::Response& response);

    bool in_outage() const noexcept;
    std::string issue_token(std::uint64_t lifetime_s);
    Reject check_token(const httplib::Request& request) const;
    void reject(httplib::Response& response, Reject reason, const std::string& message);
    /// Appends the rows to --out (and their line to --accept-log) under out_mutex_.
    bool append_rows(std::string_view jsonl, std::size_t rows);
    bool write_all_rows(std::string_view jsonl);
    /// Shuts the request's TCP connection down so the client gets no answer (drop faults).
    void abort_connection(const httplib::Request& request) const;

    StandinOptions options_;
    std::unique_ptr<httplib::Server> server_;
    std::string base_url_;
    int port_ = 0;
    int out_fd_ = -1;
    int accept_fd_ = -1;
    std::mutex out_mutex_;

    struct LiveKnobs {
        std::atomic<std::uint64_t> token_lifetime_s, max_body_bytes, max_json_bytes, fault_429_every, retry_after_s,
            fault_500_every, fault_drop_every, fault_drop_before_every;
        std::atomic<std::int64_t> outage_until_ns{0};
    } knobs_{};

    AssertionChecker assertion_checker_;
    std::mutex arc_mutex_;
    std::unordered_map<std::string, std::string> arc_keys_;  // secret -> key file path (one use each)

    mutable std::mutex tokens_mutex_;
    std::unordered_map<std::string, std::int64_t> token_expiry_ns_;

    struct Stats {
        std::atomic<std::uint64_t> requests{0}, accepted_requests{0}, rows{0}, rejected_requests{0},
            tokens_issued{0}, token_rejected{0}, arc_challenges{0}, bytes_in{0}, bytes_json{0}, store_errors{0}, valid_requests{0}, bench_unchecked_requests{0},
            long_values{0}, times_out_of_range{0};
        std::array<std::atomic<std::uint64_t>, reject_count> rejected{};
        std::array<std::atomic<std::uint64_t>, fault_count> faults{};
    } stats_;
};

}  // namespace cefd::standin
