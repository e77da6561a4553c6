// engine/pipeline/check_event.cpp: `cefd check`'s last step, the test event: one CEF line with a
// fresh marker sent to cefd's own listener, then confirmed delivered. Without --running it builds
// the real Pipeline in-process on the configured ports and spool and reads its counters; with
// --running it reads the running instance's /metrics before and after. The event goes over UDP,
// else TCP, else TLS (an OpenSSL client that pins the collector's own certificate; with mutual
// TLS it has no client certificate, and the step WARNs instead).
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
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

/// A socket of `type` connected to host:port.
Result<UniqueFd> connect_to(const std::string& host, std::uint16_t port, int type) {
    addrinfo hints{};
    hints.ai_socktype = type;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || found == nullptr)
        return Error{Errc::config, "cannot resolve " + host};
    UniqueFd fd(::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, 0));
    const bool connected = fd.valid() && ::connect(fd.get(), found->ai_addr, found->ai_addrlen) == 0;
    const int error = errno;
    ::freeaddrinfo(found);
    if (!connected) return Error{Errc::io, error, "cannot connect to " + host + ":" + std::to_string(port)};
    return fd;
}

/// Sends one line to host:port over UDP, or over TCP with a newline (RFC 6587 non-transparent).
Status send_line(const std::string& host, std::uint16_t port, bool udp, const std::string& line) {
    auto fd = connect_to(host, port, udp ? SOCK_DGRAM : SOCK_STREAM);
    if (!fd) return fd.error();
    const std::string payload = udp ? line : line + "\n";
    if (::send(fd.value().get(), payload.data(), payload.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(payload.size()))
        return Error{Errc::io, errno, "cannot send the test event"};
    return ok_status();
}

/// OpenSSL's first queued error as text ("" when none), clearing the queue.
std::string openssl_error() {
    char text[256] = "";
    if (const unsigned long code = ERR_get_error(); code != 0) ERR_error_string_n(code, text, sizeof text);
    ERR_clear_error();
    return text;
}

/// Sends one line to host:port over TLS, octet-counted (RFC 5425), as a client without a
/// certificate. The server must present a certificate from `cert_file`, the collector's own
/// receive.tls_cert_file: the self-test pins it rather than trusting a CA, so no CA bundle is
/// needed and a listener serving any other certificate fails. The host name is not checked
/// (the certificate names the collector, not the loopback address this connects to).
Status send_line_tls(const std::string& host, std::uint16_t port, const std::string& cert_file, const std::string& line) {
    auto connected = connect_to(host, port, SOCK_STREAM);
    if (!connected) return connected.error();
    const int fd = connected.value().get();
    const timeval timeout{.tv_sec = 10, .tv_usec = 0};  // a listener that never answers the handshake
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    const std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> context(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
    if (!context) return Error{Errc::unexpected, "SSL_CTX_new failed: " + openssl_error()};
    SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
    if (SSL_CTX_load_verify_locations(context.get(), cert_file.c_str(), nullptr) != 1)
        return Error{Errc::config, "cannot read receive.tls_cert_file " + cert_file + ": " + openssl_error()};
    // The leaf itself is the trust anchor: its issuer need not be in the file.
    X509_STORE_set_flags(SSL_CTX_get_cert_store(context.get()), X509_V_FLAG_PARTIAL_CHAIN);
    SSL_CTX_set_verify(context.get(), SSL_VERIFY_PEER, nullptr);
    const std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(context.get()), SSL_free);
    if (!ssl || SSL_set_fd(ssl.get(), fd) != 1) return Error{Errc::unexpected, "SSL_new failed: " + openssl_error()};
    const std::string where = host + ":" + std::to_string(port);
    if (SSL_connect(ssl.get()) != 1) {
        const long verified = SSL_get_verify_result(ssl.get());
        if (verified != X509_V_OK)
            return Error{Errc::io, "the TLS listener on " + where + " presents a certificate that is not in " + cert_file +
                                       " (" + X509_verify_cert_error_string(verified) + ")"};
        const std::string why = openssl_error();
        return Error{Errc::io, "TLS handshake with " + where + " failed" + (why.empty() ? "" : ": " + why)};
    }
    const std::string payload = std::to_string(line.size()) + " " + line;
    if (SSL_write(ssl.get(), payload.data(), static_cast<int>(payload.size())) != static_cast<int>(payload.size()))
        return Error{Errc::io, "cannot send the test event over TLS: " + openssl_error()};
    SSL_shutdown(ssl.get());  // close_notify; the listener reads the frame before it sees the close
    return ok_status();
}

/// The listener the test event goes to: UDP, else TCP, else TLS.
struct Route {
    enum class Kind : std::uint8_t { udp, tcp, tls };
    Kind kind;
    std::uint16_t port;
    const char* name;
};

Route route_of(const ReceiveConfig& receive) {
    if (receive.udp_port != 0) return {Route::Kind::udp, receive.udp_port, "UDP"};
    if (receive.tcp_port != 0) return {Route::Kind::tcp, receive.tcp_port, "TCP"};
    return {Route::Kind::tls, receive.tls_port, "TLS"};
}

/// Why the test event cannot take `route`, or "" when it can.
std::string unsendable(const ReceiveConfig& receive, const Route& route) {
    if (route.kind == Route::Kind::tls && !receive.tls_client_ca_file.empty())
        return "only TLS listens and it requires a client certificate (receive.tls_client_ca_file is set): "
               "the self-test has none to present, so the test event is not sent";
    return "";
}

Status send_event(const ReceiveConfig& receive, const Route& route, const std::string& line) {
    const std::string host = connect_host(receive.listen);
    if (route.kind == Route::Kind::tls) return send_line_tls(host, route.port, receive.tls_cert_file, line);
    return send_line(host, route.port, route.kind == Route::Kind::udp, line);
}

constexpr const char* mutual_tls_hint =
    "to see an event arrive, send one from a client holding a certificate the client CA signed, e.g. "
    "`openssl s_client -connect <host>:<tls_port> -cert client.pem -key client.key`";

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

    const Route route = route_of(config.receive);
    if (const std::string why = unsendable(config.receive, route); !why.empty()) {
        steps.push_back({"test event", StepStatus::warn, why, mutual_tls_hint});
        return;
    }
    if (auto sent = send_event(config.receive, route, test_event(marker)); !sent) {
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
    // The counter is the instance's, not the event's: on a busy collector other rows move it
    // too, so the KQL is what confirms this event.
    steps.push_back({"test event", StepStatus::pass,
                     "sent over " + std::string(route.name) + " with marker " + marker +
                         "; the instance delivered rows meanwhile (" +
                         std::to_string(static_cast<long long>(delivered_before)) + " -> " +
                         std::to_string(static_cast<long long>(delivered)) +
                         ", its own and any other traffic); to see this event in Sentinel: " + kql(marker),
                     ""});
}

/// The test event through an in-process Pipeline on the configured ports and spool.
CheckStep pipeline_step(const Config& config, const CheckOptions& options, const std::string& marker) {
    const std::string step = "test event";
    const Route route = route_of(config.receive);
    if (const std::string why = unsendable(config.receive, route); !why.empty())
        return {step, StepStatus::warn, why, mutual_tls_hint};
    auto lock = InstanceLock::acquire(config);
    if (!lock) return {step, StepStatus::fail, lock.error().describe(), "use `cefd check --running` to check a running cefd"};
    if (auto limit = ensure_file_limit(config, true); !limit) return {step, StepStatus::fail, limit.error().describe(), ""};
    auto built = Pipeline::build(config);
    if (!built) return {step, StepStatus::fail, "cannot start the pipeline: " + built.error().describe(), "see the steps above"};
    Pipeline& pipeline = *built.value();
    pipeline.start();
    const double rows_before = pipeline.metrics().value("parse_rows_total");
    auto sent = send_event(config.receive, route, test_event(marker));
    const auto value = [&pipeline](const char* name) { return pipeline.metrics().value(name); };
    bool parsed = false;
    bool settled = false;
    if (sent) {
        parsed = wait_for(std::chrono::seconds(10), [&] { return value("parse_rows_total") > rows_before; });
        if (parsed) {
            // Sealed into a batch, then nothing left pending: every batch, the event's and any the
            // spool held from before, was delivered, dead-lettered or dropped.
            settled = wait_for(std::chrono::seconds(options.timeout_s), [&] {
                return value("batch_batches_total") >= 1 && value("spool_pending_batches") == 0;
            });
        }
    }
    // The counters cannot say which batch went where, so the event counts as delivered only when
    // no batch was dead-lettered or dropped meanwhile: a row delivered could be an older batch's.
    const double lost_batches = value("send_dead_lettered_batches_total") + value("spool_dropped_batches_total");
    const bool delivered = settled && lost_batches == 0 && value("send_delivered_rows_total") >= 1;
    const std::string counters = "rows " + std::to_string(static_cast<long long>(value("parse_rows_total"))) +
                                 ", delivered rows " + std::to_string(static_cast<long long>(value("send_delivered_rows_total"))) +
                                 ", dead-lettered batches " +
                                 std::to_string(static_cast<long long>(value("send_dead_lettered_batches_total")));
    pipeline.stop();
    if (!sent) return {step, StepStatus::fail, sent.error().describe(), "is something filtering loopback traffic?"};
    if (!parsed)
        return {step, StepStatus::fail, "sent over " + std::string(route.name) + " but no row was parsed (" + counters + ")",
                "a local firewall drops the packet, or the listener is not on " + config.receive.listen};
    if (settled && lost_batches > 0)
        return {step, StepStatus::fail,
                "marker " + marker + " parsed, but " + std::to_string(static_cast<long long>(lost_batches)) +
                    " batch(es) were dead-lettered or dropped meanwhile and it may be among them (" + counters + ")",
                "see cefd's log for the reason: a dead-lettered batch is in azure.dead_letter_dir (the "
                "ingestion step accepted a small row, so look for a size or column problem); a spool drop "
                "is in cefd_spool_drops_total by reason"};
    if (!delivered)
        return {step, StepStatus::fail,
                "marker " + marker + " parsed but not delivered in " + std::to_string(options.timeout_s) + " s (" + counters + ")",
                "see the token and ingestion steps above; it stays in the spool and goes out at the next start"};
    return {step, StepStatus::pass,
            "sent through cefd's own " + std::string(route.name) + " listener and delivered (" + counters +
                "); marker " + marker + "; in Sentinel: " + kql(marker),
            ""};
}

}  // namespace cefd::check_steps
