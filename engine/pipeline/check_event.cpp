// engine/pipeline/check_event.cpp: `cefd check`'s last step, the test event: one CEF line with a
// fresh marker sent to cefd's own listener, then confirmed delivered. Without --running it builds
// the real Pipeline in-process on the configured ports and spool and reads its counters; with
// --running it reads the running instance's /metrics before and after.
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <thread>

#include "engine/pipeline/check_startup.h"
#include "engine/pipeline/check_steps.h"
#include "engine/pipeline/pipeline.h"
#include "engine/unique_fd.h"

namespace cefd::check_steps {
namespace {

/// Where to send a test event for a listener bound to `listen`.
std::string connect_host(const std::string& listen) {
    if (listen == "0.0.0.0" || listen.empty()) return "127.0.0.1";
    if (listen == "::") return "::1";
    return listen;
}

/// Sends one line to host:port over UDP, or over TCP with a newline (RFC 6587 non-transparent).
Status send_line(const std::string& host, std::uint16_t port, bool udp, const std::string& line) {
    addrinfo hints{};
    hints.ai_socktype = udp ? SOCK_DGRAM : SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || found == nullptr)
        return Error{Errc::config, "cannot resolve " + host};
    UniqueFd fd(::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, 0));
    const bool connected = fd.valid() && ::connect(fd.get(), found->ai_addr, found->ai_addrlen) == 0;
    const int error = errno;
    ::freeaddrinfo(found);
    if (!connected) return Error{Errc::io, error, "cannot connect to " + host + ":" + std::to_string(port)};
    const std::string payload = udp ? line : line + "\n";
    if (::send(fd.get(), payload.data(), payload.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(payload.size()))
        return Error{Errc::io, errno, "cannot send the test event"};
    return ok_status();
}

/// The test event: a CEF line whose unknown extension key lands in AdditionalExtensions.
std::string test_event(const std::string& marker) {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &tm);
    char host[256] = "cefd-check";
    ::gethostname(host, sizeof host - 1);
    return std::string("<134>") + stamp + " " + host +
           " CEF:0|cefd|cefd check|1.0|cefd-check|cefd check test event|1|cefdCheckMarker=" + marker;
}

/// Reads one series from Prometheus text (summed over labels).
double metric_value(const std::string& text, const std::string& name) {
    double sum = 0;
    std::size_t pos = 0;
    while ((pos = text.find(name, pos)) != std::string::npos) {
        const bool line_start = pos == 0 || text[pos - 1] == '\n';
        const char next = pos + name.size() < text.size() ? text[pos + name.size()] : '\0';
        const std::size_t end = text.find('\n', pos);
        if (line_start && (next == ' ' || next == '{')) {
            const std::string line = text.substr(pos, end - pos);
            sum += std::atof(line.c_str() + line.rfind(' ') + 1);
        }
        if (end == std::string::npos) break;
        pos = end;
    }
    return sum;
}

/// GET http://<metrics.listen>/metrics, or "" on failure.
std::string fetch_metrics(const std::string& listen) {
    std::string body;
    CURL* curl = curl_easy_init();
    const std::string url = "http://" + listen + "/metrics";
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10'000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, +[](char* data, std::size_t size, std::size_t count, void* user) {
        static_cast<std::string*>(user)->append(data, size * count);
        return size * count;
    });
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    const CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    return rc == CURLE_OK && status == 200 ? body : std::string();
}

bool wait_for(std::chrono::seconds timeout, const auto& condition) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return condition();
}

}  // namespace

std::string make_marker() {
    std::random_device random;
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "cefdcheck%08x%08x", random(), random());
    return buffer;
}

std::string kql(const std::string& marker) {
    return "CommonSecurityLog | where AdditionalExtensions has \"" + marker + "\"";
}

/// The test event through a running instance: its /metrics, then its listener.
void running_steps(const Config& config, const CheckOptions& options, const std::string& marker,
                   std::vector<CheckStep>& steps) {
    if (config.metrics.listen.empty()) {
        steps.push_back({"running instance", StepStatus::fail, "metrics.listen is empty: there is no /metrics to read",
                         "set metrics.listen (e.g. \"127.0.0.1:9514\") and restart cefd"});
        return;
    }
    const std::string before = fetch_metrics(config.metrics.listen);
    if (before.empty()) {
        steps.push_back({"running instance", StepStatus::fail, "no answer from http://" + config.metrics.listen + "/metrics",
                         "is cefd running with this config? systemctl status cefd"});
        return;
    }
    const double delivered_before = metric_value(before, "cefd_send_delivered_rows_total");
    char line[256];
    std::snprintf(line, sizeof line, "http://%s/metrics answers: delivered rows %.0f, spool pending %.0f, dead-lettered %.0f",
                  config.metrics.listen.c_str(), delivered_before, metric_value(before, "cefd_spool_pending_batches"),
                  metric_value(before, "cefd_send_dead_lettered_batches_total"));
    steps.push_back({"running instance", StepStatus::pass, line, ""});

    const bool udp = config.receive.udp_port != 0;
    const std::uint16_t port = udp ? config.receive.udp_port : config.receive.tcp_port;
    if (port == 0) {
        steps.push_back({"test event", StepStatus::warn, "only TLS listens: the test event is not sent over TLS", ""});
        return;
    }
    if (auto sent = send_line(connect_host(config.receive.listen), port, udp, test_event(marker)); !sent) {
        steps.push_back({"test event", StepStatus::fail, sent.error().describe(), "is the listener up? see `cefd check` without --running"});
        return;
    }
    double delivered = delivered_before;
    const bool ok = wait_for(std::chrono::seconds(options.timeout_s), [&] {
        delivered = metric_value(fetch_metrics(config.metrics.listen), "cefd_send_delivered_rows_total");
        return delivered > delivered_before;
    });
    if (!ok) {
        steps.push_back({"test event", StepStatus::fail,
                         "sent (marker " + marker + ") but the delivered count did not move in " +
                             std::to_string(options.timeout_s) + " s",
                         "see cefd's log and /metrics: cefd_send_* errors, cefd_spool_pending_batches"});
        return;
    }
    steps.push_back({"test event", StepStatus::pass,
                     "sent over " + std::string(udp ? "UDP" : "TCP") + " with marker " + marker +
                         " and delivered (rows delivered " + std::to_string(static_cast<long long>(delivered_before)) +
                         " -> " + std::to_string(static_cast<long long>(delivered)) + "); in Sentinel: " + kql(marker),
                     ""});
}

/// The test event through an in-process Pipeline on the configured ports and spool.
CheckStep pipeline_step(const Config& config, const CheckOptions& options, const std::string& marker) {
    const std::string step = "test event";
    const bool udp = config.receive.udp_port != 0;
    const std::uint16_t port = udp ? config.receive.udp_port : config.receive.tcp_port;
    if (port == 0) return {step, StepStatus::warn, "only TLS listens: the test event is not sent over TLS", ""};
    auto lock = InstanceLock::acquire(config);
    if (!lock) return {step, StepStatus::fail, lock.error().describe(), "use `cefd check --running` to check a running cefd"};
    if (auto limit = ensure_file_limit(config, true); !limit) return {step, StepStatus::fail, limit.error().describe(), ""};
    auto built = Pipeline::build(config);
    if (!built) return {step, StepStatus::fail, "cannot start the pipeline: " + built.error().describe(), "see the steps above"};
    Pipeline& pipeline = *built.value();
    pipeline.start();
    const double rows_before = pipeline.metrics().value("parse_rows_total");
    auto sent = send_line(connect_host(config.receive.listen), port, udp, test_event(marker));
    const auto value = [&pipeline](const char* name) { return pipeline.metrics().value(name); };
    bool parsed = false;
    bool delivered = false;
    if (sent) {
        parsed = wait_for(std::chrono::seconds(10), [&] { return value("parse_rows_total") > rows_before; });
        if (parsed) {
            // Sealed into a batch, then nothing left pending and at least one row delivered.
            delivered = wait_for(std::chrono::seconds(options.timeout_s), [&] {
                return value("batch_batches_total") >= 1 && value("spool_pending_batches") == 0 &&
                       value("send_delivered_rows_total") >= 1;
            });
        }
    }
    const std::string counters = "rows " + std::to_string(static_cast<long long>(value("parse_rows_total"))) +
                                 ", delivered rows " + std::to_string(static_cast<long long>(value("send_delivered_rows_total"))) +
                                 ", dead-lettered batches " +
                                 std::to_string(static_cast<long long>(value("send_dead_lettered_batches_total")));
    pipeline.stop();
    if (!sent) return {step, StepStatus::fail, sent.error().describe(), "is something filtering loopback traffic?"};
    if (!parsed)
        return {step, StepStatus::fail, "sent over " + std::string(udp ? "UDP" : "TCP") + " but no row was parsed (" + counters + ")",
                "a local firewall drops the packet, or the listener is not on " + config.receive.listen};
    if (!delivered)
        return {step, StepStatus::fail,
                "marker " + marker + " parsed but not delivered in " + std::to_string(options.timeout_s) + " s (" + counters + ")",
                "see the token and ingestion steps above; it stays in the spool and goes out at the next start"};
    return {step, StepStatus::pass,
            "sent through cefd's own " + std::string(udp ? "UDP" : "TCP") + " listener and delivered (" + counters +
                "); marker " + marker + "; in Sentinel: " + kql(marker),
            ""};
}

}  // namespace cefd::check_steps
