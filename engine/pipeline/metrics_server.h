// engine/pipeline/metrics_server.h: the HTTP endpoint on `[metrics] listen`:
//
//   GET /metrics   MetricsRegistry::render(), Prometheus text 0.0.4
//   GET /healthz   200 "ok": the process is alive and its metrics thread answers
//   GET /readyz    200 when every ReadinessChecks check passes, else 503; the body lists each
//                  check with ok/failed and why
//
// It must stay answerable whatever a client does, so it is a small epoll loop on one thread of
// its own, not a thread pool with a queue. The bounds:
//   - at most max_connections open at once (descriptors included). When all are taken, a new
//     connection evicts the oldest one that has not yet been answered, so a burst of idle
//     connections cannot lock a scraper out: a scraper sends its request at once and is answered
//     in the same pass, before anyone could evict it;
//   - a connection has read_timeout_ms to send its whole request and as long again to take the
//     answer, then it is closed (slow or idle clients);
//   - a request (line and headers) over 8 KiB is answered 431, anything that is not
//     an HTTP/1.x request 400, other methods 405, other paths 404; then the connection closes.
// One request per connection (Connection: close). After answering, the server shuts its side
// and discards what the client still sends for a moment, so the client reads the answer instead
// of a reset. Every refusal and close is counted in cefd_metrics_rejected_total{reason}.
//
// Lifecycle: open() binds (so a port in use is a start-up error) and registers the server's own
// metrics; start() starts the thread; stop() (or the destructor) ends it and closes everything.
// The registry and checks must outlive the server.
#pragma once

#include <cstdint>
#include <memory>

#include "engine/metrics/health.h"
#include "engine/metrics/metrics.h"
#include "engine/result.h"

namespace cefd {

struct MetricsConfig;

class MetricsServer {
public:
    static Result<std::unique_ptr<MetricsServer>> open(const MetricsConfig& config, MetricsRegistry& registry,
                                                       const ReadinessChecks& checks);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    void start();
    void stop();
    /// The bound port (useful when listen asked for port 0).
    [[nodiscard]] std::uint16_t port() const noexcept;

    class Impl;

private:
    explicit MetricsServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace cefd
