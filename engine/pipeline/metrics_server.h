// engine/pipeline/metrics_server.h: serves MetricsRegistry::render() as Prometheus text at
// GET /metrics on its own thread (cpp-httplib). Not on any hot path.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "engine/metrics/metrics.h"
#include "engine/result.h"

namespace httplib {
class Server;
}

namespace cefd {

class MetricsServer {
public:
    /// Binds `listen` ("host:port") now, so a port in use is a start-up error.
    static Result<std::unique_ptr<MetricsServer>> open(const std::string& listen, const MetricsRegistry& registry);
    ~MetricsServer();
    void start();
    void stop();

private:
    MetricsServer() = default;
    std::unique_ptr<httplib::Server> server_;
    std::thread thread_;
};

}  // namespace cefd
