#include "engine/pipeline/metrics_server.h"

#include <httplib.h>

#include "engine/log.h"

namespace cefd {

Result<std::unique_ptr<MetricsServer>> MetricsServer::open(const std::string& listen, const MetricsRegistry& registry) {
    const auto colon = listen.rfind(':');
    std::string host = listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const int port = std::atoi(listen.c_str() + colon + 1);
    auto server = std::unique_ptr<MetricsServer>(new MetricsServer());
    server->server_ = std::make_unique<httplib::Server>();
    server->server_->new_task_queue = [] { return new httplib::ThreadPool(1); };
    server->server_->Get("/metrics", [&registry](const httplib::Request&, httplib::Response& response) {
        response.set_content(registry.render(), "text/plain; version=0.0.4");
    });
    if (!server->server_->bind_to_port(host, port)) {
        return Error{Errc::address_in_use, "metrics.listen: cannot listen on " + listen + " (in use, or not a local address)"};
    }
    return server;
}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::start() {
    thread_ = std::thread([this] { server_->listen_after_bind(); });
}

void MetricsServer::stop() {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
}

}  // namespace cefd
