// stages/send/send.h: the Sender delivers spooled batches to the Azure Monitor Logs Ingestion
// API: POST {endpoint}/dataCollectionRules/{dcr_id}/streams/{stream}?api-version=2023-01-01,
// Content-Encoding: gzip, a bearer token from Microsoft Entra ID, a fresh x-ms-client-request-id
// per request. Contract and error handling: Microsoft's "Logs Ingestion API in Azure Monitor" docs,
// summarised in README.md.
//
// Lifecycle: one Sender, built after the spool; its thread calls run() until stop is requested
// and then keeps delivering until the source is empty or drain_deadline passes. Only that thread
// touches the Sender; stats() may be read from any thread.
//
// Outcomes: 204 -> ack. 429/5xx/network -> retry with backoff and jitter, honouring
// Retry-After, without a count limit (the spool bounds what is kept). 401 -> refresh the token
// once, then retry. 413 -> split in half and resend both. 403 -> retried for
// forbidden_retry_window_ms (a new role grant takes up to 30 min to apply), then like 400/404:
// dead-letter directory, counted and logged with the fix hint. Nothing is dropped without a
// counter and a log line. health() may be called from any thread (it takes a mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "engine/batch_types.h"
#include "engine/config/config_errors.h"
#include "engine/config/secret.h"
#include "engine/metrics/metrics.h"
#include "engine/result.h"

namespace cefd {

struct AzureTarget {
    /// https://<dce-or-dcr>.<region>-1.ingest.monitor.azure.com
    std::string endpoint;
    /// dcr- followed by 32 hex digits (the DCR's immutableId).
    std::string dcr_id;
    /// The DCR stream for CommonSecurityLog rows.
    std::string stream = "Custom-CommonSecurityLog";
    /// The DCR stream for Syslog rows ([parse] non_cef = "syslog_table"). Like `stream`, a
    /// declared stream (Custom-...): the DCR's data flow maps it to Microsoft-Syslog.
    std::string syslog_stream = "Custom-Syslog";
    /// Share of new requests, relative to the other targets' weights.
    std::uint32_t weight = 1;
    /// Most requests in flight to this target at once; 0 = only azure.max_in_flight limits it.
    /// A target that is throttled (429) or paused takes none, and the others take its share.
    std::uint32_t max_in_flight = 0;
};

struct AzureConfig {
    /// The first (or only) target; [[azure.targets]] adds more.
    AzureTarget target;
    std::vector<AzureTarget> extra_targets;

    enum class Auth : std::uint8_t { client_secret, client_certificate, managed_identity, workload_identity, arc, none };
    Auth auth = Auth::client_secret;
    /// Entra ID authority. US Gov: https://login.microsoftonline.us; China (21Vianet):
    /// https://login.chinacloudapi.cn. Never derived from endpoint or scope.
    std::string authority_host = "https://login.microsoftonline.com";
    std::string tenant_id;
    std::string client_id;
    /// Inline secret. A config holding one must not be readable by group or others.
    Secret client_secret;
    /// File holding the secret (preferred); read at start-up.
    std::string client_secret_file;
    /// auth = "client_certificate": PEM certificate registered on the app (the first one in the
    /// file is used; its SHA-1/SHA-256 thumbprints go into the assertion's x5t/x5t#S256).
    std::string client_certificate_file;
    /// auth = "client_certificate": PEM RSA private key of that certificate, unencrypted; must
    /// not be readable by other users. Empty: the key is in client_certificate_file.
    std::string client_key_file;
    /// A hash of the certificate and key files' bytes when the config was read (0: none read), so
    /// a certificate renewed in place is a change on reload, not only a new path.
    std::uint64_t certificate_files_hash = 0;
    /// Token scope for the Entra flows. The double slash is what Microsoft's own Logs Ingestion
    /// sample sends. US Gov: https://monitor.azure.us//.default; China: https://monitor.azure.cn//.default.
    std::string scope = "https://monitor.azure.com//.default";
    /// Managed identity (IMDS) token endpoint; overridable for tests.
    std::string imds_endpoint = "http://169.254.169.254/metadata/identity/oauth2/token";
    /// auth = "arc": the Arc agent's identity endpoint. Empty: $IDENTITY_ENDPOINT, else
    /// http://localhost:40342/metadata/identity/oauth2/token.
    std::string identity_endpoint;
    /// auth = "arc": the only directory a challenge's key file may be read from.
    std::string arc_token_dir = "/var/opt/azcmagent/tokens";
    /// Resource for IMDS and Arc tokens. US Gov: https://monitor.azure.us; China: https://monitor.azure.cn.
    std::string audience = "https://monitor.azure.com";
    /// Extra CA bundle (PEM), for private endpoints and tests. TLS verification is always on.
    std::string ca_file;
    /// HTTPS proxy URL; empty uses the usual environment variables (https_proxy, no_proxy).
    std::string proxy;
    std::uint32_t max_in_flight = 4;
    std::uint32_t connect_timeout_ms = 10'000;
    std::uint32_t request_timeout_ms = 60'000;
    /// Where batches Azure refused for good (400/403/404) are kept, zstd-compressed.
    std::string dead_letter_dir = "/var/lib/cefd/dead-letter";
    /// Longest a shutdown waits for in-flight and spooled batches before leaving them to the spool.
    std::uint32_t drain_timeout_ms = 10'000;
    /// First retry delay after a 5xx or network error; doubles per attempt (with jitter) up to
    /// retry_max_ms. 429 waits for Retry-After instead when the server sends one.
    std::uint32_t retry_initial_ms = 1'000;
    std::uint32_t retry_max_ms = 60'000;
    /// How long a batch answered 403 is retried (with the usual backoff) before it is
    /// dead-lettered: a fresh "Monitoring Metrics Publisher" grant takes up to 30 min to apply.
    /// 0 = dead-letter at the first 403.
    std::uint32_t forbidden_retry_window_ms = 1'800'000;

    void validate(ConfigErrors& errors) const;
};

struct SendStats {
    Counter requests{0};
    Counter delivered_batches{0};   // 204
    Counter delivered_rows{0};
    Counter delivered_bytes{0};     // compressed bytes accepted
    Counter retries{0};             // every re-send of a batch, any cause
    Counter throttled{0};           // 429
    Counter server_errors{0};       // 5xx
    Counter network_errors{0};      // connect/TLS/timeouts/resets
    Counter token_refreshes{0};
    Counter token_errors{0};        // failed token fetches (the sender keeps the old token while valid)
    Counter unauthorized{0};        // 401
    Counter split_batches{0};       // 413 -> split in two
    Counter dead_lettered_batches{0};  // 400/403/404
    Counter dead_lettered_rows{0};
    Counter dead_letter_errors{0};  // could not write the dead letter: the batch is kept, retried
    Counter forbidden_retries{0};   // 403 inside forbidden_retry_window_ms: retried (also in retries)
    Counter in_flight{0};           // gauge
    Counter token_expiry_unix_s{0}; // gauge: unix seconds when the token expires; 0 = none
    /// Seconds from handing an ingestion request to libcurl to its answer or error (1 ms..60 s).
    Histogram request_duration_s{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                 1, 2.5, 5, 10, 30, 60};
};

/// What the sender knows about the Azure side, for the readiness endpoint and `cefd check`.
/// With auth = "none", token_valid is true and token_expires_unix_s 0.
struct SendHealth {
    bool token_valid = false;               // a token is held and not expired
    std::int64_t token_expires_unix_s = 0;  // 0 when none
    bool last_send_ok = false;              // the last finished request was accepted (2xx)
    std::int64_t last_success_unix_s = 0;   // 0 when none yet
    std::uint64_t consecutive_failures = 0; // requests or token fetches failed in a row
    std::string last_error;                 // short, secret-free; "" when fine
};

class Sender {
public:
    static Result<std::unique_ptr<Sender>> create(const AzureConfig& config, BatchSource& source);
    /// Loads the credentials create() would (the secret file, or the client certificate and
    /// its key, matched) and drops them: for `cefd check-config`. The message starts with the key.
    static Status check_credentials(const AzureConfig& config);
    ~Sender();
    Sender(const Sender&) = delete;
    Sender& operator=(const Sender&) = delete;

    /// The sender thread's body. After `stop` is requested it keeps going until the source
    /// has nothing pending or drain_timeout_ms passes; then it returns.
    void run(std::stop_token stop);

    /// SIGHUP, from any thread: new targets and credentials (endpoint, dcr_id, streams,
    /// [[azure.targets]], authority_host, tenant_id, client_id, client_secret(_file), client
    /// certificate and key, scope, audience, imds/identity endpoints). Credentials are loaded
    /// here, so a bad one is an error and the running settings stay. The sender thread applies
    /// them at a batch boundary: it starts no new request, lets those in flight finish, then
    /// switches and drops its cached token. Batches waiting for a retry go to the new targets.
    /// Every other AzureConfig field keeps the value the Sender was created with.
    Status reconfigure(const AzureConfig& config);
    /// How many reconfigure() calls the sender thread has applied (tests, logs).
    [[nodiscard]] std::uint64_t reconfigurations() const noexcept;

    [[nodiscard]] const SendStats& stats() const noexcept { return stats_; }
    /// A snapshot; any thread (takes a mutex the sender thread holds only briefly).
    [[nodiscard]] SendHealth health() const;
    void register_metrics(MetricsRegistry& registry) const;

    class Impl;

private:
    explicit Sender(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
    SendStats stats_;
};

}  // namespace cefd
