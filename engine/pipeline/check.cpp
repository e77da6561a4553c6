#include "engine/pipeline/check.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <thread>

#include "engine/clock.h"
#include "engine/log.h"
#include "engine/pipeline/check_startup.h"
#include "engine/pipeline/config.h"
#include "engine/pipeline/pipeline.h"
#include "engine/row/row_json.h"
#include "engine/unique_fd.h"
#include "stages/receive/engine.h"
#include "stages/send/token.h"

namespace cefd {
namespace {

using Status_ = CheckStep::Status;

const char* status_name(Status_ status) {
    switch (status) {
        case Status_::pass: return "PASS";
        case Status_::warn: return "WARN";
        case Status_::fail: return "FAIL";
    }
    return "FAIL";
}

std::string human_bytes(std::uint64_t bytes) {
    char buffer[32];
    if (bytes >= (1ULL << 30)) std::snprintf(buffer, sizeof buffer, "%.1f GiB", static_cast<double>(bytes) / (1ULL << 30));
    else if (bytes >= (1ULL << 20)) std::snprintf(buffer, sizeof buffer, "%.1f MiB", static_cast<double>(bytes) / (1ULL << 20));
    else std::snprintf(buffer, sizeof buffer, "%llu bytes", static_cast<unsigned long long>(bytes));
    return buffer;
}

/// A sysctl as a number, or -1 when it cannot be read.
long long read_sysctl(const char* path) {
    std::ifstream in(path);
    long long value = -1;
    if (!(in >> value)) return -1;
    return value;
}

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

std::string make_marker() {
    std::random_device random;
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "cefdcheck%08x%08x", random(), random());
    return buffer;
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

std::string kql(const std::string& marker) {
    return "CommonSecurityLog | where AdditionalExtensions has \"" + marker + "\"";
}

// ---------------------------------------------------------------------------------------------
// HTTP probes (libcurl, the same library and TLS settings as the sender)

struct Probe {
    CURLcode rc = CURLE_OK;
    long status = 0;
    std::string error;   // curl's error buffer
    std::string date;    // the Date header
    std::string body;    // capped
    std::string leaf;    // the leaf certificate's subject and issuer
    std::string address; // the IP connected to
    double dns_ms = 0;
    double connect_ms = 0;
    double tls_ms = 0;
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
    auto* body = static_cast<std::string*>(user);
    if (body->size() < 4096) body->append(data, std::min<std::size_t>(size * count, 4096 - body->size()));
    return size * count;
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
    const std::string_view line(data, size * count);
    if (line.size() > 5 && strncasecmp(line.data(), "date:", 5) == 0) {
        std::string value(line.substr(5));
        while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
        while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
        *static_cast<std::string*>(user) = value;
    }
    return size * count;
}

Probe http_probe(const AzureConfig& azure, const std::string& url, const std::string& method,
                 const std::vector<std::string>& headers = {}, const std::string& body = {}) {
    Probe probe;
    CURL* curl = curl_easy_init();
    char error[CURL_ERROR_SIZE] = {};
    curl_slist* list = nullptr;
    for (const auto& header : headers) list = curl_slist_append(list, header.c_str());
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(azure.connect_timeout_ms));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30'000L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_CERTINFO, 1L);
    if (!azure.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, azure.ca_file.c_str());
    if (!azure.proxy.empty()) curl_easy_setopt(curl, CURLOPT_PROXY, azure.proxy.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &probe.body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &probe.date);
    if (list != nullptr) curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    if (method == "POST") {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    probe.rc = curl_easy_perform(curl);
    probe.error = error[0] != '\0' ? error : curl_easy_strerror(probe.rc);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &probe.status);
    double seconds = 0;
    curl_easy_getinfo(curl, CURLINFO_NAMELOOKUP_TIME, &seconds);
    probe.dns_ms = seconds * 1000;
    curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME, &seconds);
    probe.connect_ms = seconds * 1000;
    curl_easy_getinfo(curl, CURLINFO_APPCONNECT_TIME, &seconds);
    probe.tls_ms = seconds * 1000;
    char* ip = nullptr;
    if (curl_easy_getinfo(curl, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip != nullptr) probe.address = ip;
    curl_certinfo* certs = nullptr;
    if (curl_easy_getinfo(curl, CURLINFO_CERTINFO, &certs) == CURLE_OK && certs != nullptr && certs->num_of_certs > 0) {
        std::string subject, issuer;
        for (curl_slist* item = certs->certinfo[0]; item != nullptr; item = item->next) {
            const std::string_view field = item->data;
            if (field.rfind("Subject:", 0) == 0) subject = std::string(field.substr(8));
            if (field.rfind("Issuer:", 0) == 0) issuer = std::string(field.substr(7));
        }
        probe.leaf = "\"" + subject + "\" issued by \"" + issuer + "\", chain of " + std::to_string(certs->num_of_certs);
    }
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return probe;
}

/// DNS, TCP and TLS to the host of `url`, as one step; the hint names the layer that failed.
CheckStep connectivity_step(const std::string& step, const AzureConfig& azure, const std::string& url) {
    const Probe probe = http_probe(azure, url, "GET");
    switch (probe.rc) {
        case CURLE_OK: break;
        case CURLE_COULDNT_RESOLVE_HOST:  // DNS: a typo in the host, or no resolver for a private endpoint
            return {step, Status_::fail, "DNS: cannot resolve the host of " + url + " (" + probe.error + ")",
                    "check the host name in the config and /etc/resolv.conf; a private link endpoint needs "
                    "its private DNS zone"};
        case CURLE_COULDNT_RESOLVE_PROXY:
            return {step, Status_::fail, "DNS: cannot resolve the proxy (" + probe.error + ")",
                    "check azure.proxy and the https_proxy variable"};
        case CURLE_COULDNT_CONNECT:       // refused or unreachable: a firewall, NSG or no route
        case CURLE_OPERATION_TIMEDOUT:
            return {step, Status_::fail, "TCP: cannot connect to " + url + " (" + probe.error + ")",
                    "allow outbound TCP 443 to this host (firewall, NSG, azure.proxy)"};
        case CURLE_PEER_FAILED_VERIFICATION:  // an untrusted chain, or the name does not match
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CERTPROBLEM:
            return {step, Status_::fail, "TLS: " + probe.error,
                    "the server's certificate does not chain to a trusted CA or does not match its name: "
                    "behind a TLS-inspecting proxy, put its CA in azure.ca_file; otherwise check the host name and "
                    "azure.ca_file (currently " + (azure.ca_file.empty() ? std::string("the system store") : azure.ca_file) + ")"};
        default:
            return {step, Status_::fail, "cannot reach " + url + ": " + probe.error,
                    "check the URL, azure.proxy and outbound HTTPS"};
    }
    char timing[160];
    std::snprintf(timing, sizeof timing, "DNS %.0f ms, TCP %.0f ms, TLS %.0f ms", probe.dns_ms,
                  probe.connect_ms - probe.dns_ms, probe.tls_ms > 0 ? probe.tls_ms - probe.connect_ms : 0.0);
    std::string message = url + " (" + probe.address + "): " + timing +
                          (probe.leaf.empty() ? std::string(", no TLS") : ", certificate " + probe.leaf + " verified");
    if (probe.date.empty()) return {step, Status_::pass, message + "; no Date header, clock skew not checked", ""};
    const time_t server = curl_getdate(probe.date.c_str(), nullptr);
    if (server < 0) return {step, Status_::pass, message + "; unreadable Date header", ""};
    const long long skew = static_cast<long long>(std::time(nullptr)) - static_cast<long long>(server);
    message += "; clock skew " + std::to_string(skew) + " s";
    // Entra ID refuses assertions more than 5 minutes ahead; tokens look expired early.
    if (skew > 300 || skew < -300)
        return {step, Status_::fail, message, "sync this machine's clock (chrony or systemd-timesyncd)"};
    if (skew > 30 || skew < -30)
        return {step, Status_::warn, message, "sync this machine's clock (chrony or systemd-timesyncd)"};
    return {step, Status_::pass, message, ""};
}

/// The fix for an Entra ID error, from the AADSTS code the token error carries.
std::string token_hint(const std::string& error, const AzureConfig& azure) {
    struct Known {
        const char* code;
        const char* hint;
    };
    static constexpr Known known[] = {
        {"AADSTS7000215", "the client secret is wrong: copy the secret's Value (not its ID) from the app registration's "
                          "Certificates & secrets into azure.client_secret_file"},
        {"AADSTS7000222", "the client secret has expired: create a new one in the app registration"},
        {"AADSTS90002", "azure.tenant_id is not a tenant: copy the Directory (tenant) ID from the app registration"},
        {"AADSTS900023", "azure.tenant_id is not a tenant ID or domain: copy the Directory (tenant) ID"},
        {"AADSTS700016", "azure.client_id is not an application in this tenant: copy the Application (client) ID, "
                         "and check tenant_id"},
        {"AADSTS700027", "the certificate is not registered on the app, or the key does not match it"},
        {"AADSTS700024", "the assertion is not valid yet or expired: sync this machine's clock"},
        {"AADSTS70011", "azure.scope (or audience) is not valid for the Logs Ingestion API"},
        {"invalid_scope", "azure.scope (or audience) is not valid for the Logs Ingestion API"},
    };
    for (const Known& k : known) {
        if (error.find(k.code) != std::string::npos) return k.hint;
    }
    if (azure.auth == AzureConfig::Auth::managed_identity)
        return "is a managed identity assigned to this VM (and azure.client_id its client ID, if user-assigned)?";
    return "see the error above; check azure.authority_host, tenant_id, client_id and the credential";
}

/// One row straight to a DCR stream: proves the token, the DCR, the stream and the role.
CheckStep ingestion_step(const AzureConfig& azure, const AzureTarget& target, const std::string& token,
                         const std::string& marker) {
    const std::string step = "ingestion " + target.dcr_id + "/" + target.stream;
    const std::string url = target.endpoint + "/dataCollectionRules/" + target.dcr_id + "/streams/" + target.stream +
                            "?api-version=2023-01-01";
    char now[40];
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    std::strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const std::string body = std::string("[{\"TimeGenerated\":\"") + now +
                             "\",\"DeviceVendor\":\"cefd\",\"DeviceProduct\":\"cefd check\",\"Activity\":\"cefd check "
                             "direct request\",\"AdditionalExtensions\":\"cefdCheckMarker=" + marker + "\"}]";
    std::vector<std::string> headers = {"Content-Type: application/json"};
    if (!token.empty()) headers.push_back("Authorization: Bearer " + token);
    const Probe probe = http_probe(azure, url, "POST", headers, body);
    if (probe.rc != CURLE_OK)
        return {step, Status_::fail, "request failed: " + probe.error, "see the endpoint step above"};
    const std::string answer = "HTTP " + std::to_string(probe.status) + (probe.body.empty() ? "" : ": " + probe.body.substr(0, 300));
    switch (probe.status) {
        case 200:
        case 204:
            return {step, Status_::pass, "accepted a test row (marker " + marker + "): " + kql(marker), ""};
        case 401:  // the token is not for this API (audience/scope) or expired
            return {step, Status_::fail, answer, "the token was refused: check azure.scope / audience for this cloud"};
        case 403:  // the app lacks the role on the DCR, or a fresh grant has not applied yet
            return {step, Status_::fail, answer,
                    "grant the app (azure.client_id) the \"Monitoring Metrics Publisher\" role on the DCR " +
                        target.dcr_id + "; a new role assignment can take up to 30 minutes to apply"};
        case 404:  // a wrong immutable id, stream name, or the DCE of another region
            return {step, Status_::fail, answer,
                    "check azure.dcr_id (the DCR's immutable ID, dcr-...), the stream name (" + target.stream +
                        ") declared in the DCR, and that azure.endpoint is the logs ingestion URL of the DCE linked "
                        "to that DCR"};
        case 413:
            return {step, Status_::fail, answer, "a proxy limits request sizes"};
        case 429:
        case 500:
        case 502:
        case 503:
            return {step, Status_::warn, answer, "Azure is throttling or unavailable right now: run the check again"};
        default:
            return {step, Status_::fail, answer, "the DCR refused the request: see its answer"};
    }
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

// ---------------------------------------------------------------------------------------------
// The steps

void listener_steps(const Config& config, std::vector<CheckStep>& steps) {
    for (const Listener& listener : listeners_of(config)) {
        const std::string step = "listen " + listener.text();
        auto bound = probe_bind(listener);
        if (bound) {
            steps.push_back({step, Status_::pass, "bindable (" + listener.key + ")", ""});
            continue;
        }
        const Error& error = bound.error();
        std::string hint;
        if (error.code == Errc::address_in_use)
            hint = "stop what holds the port (is cefd already running? then use `cefd check --running`), or change " +
                   listener.key;
        else if (error.code == Errc::permission)
            hint = "ports below 1024 need CAP_NET_BIND_SERVICE: AmbientCapabilities=CAP_NET_BIND_SERVICE in the unit "
                   "(deploy/cefd.service has it), or a port of 1024 or more";
        else
            hint = "check receive.listen / metrics.listen: it must be an address of this machine";
        steps.push_back({step, Status_::fail, error.describe(), hint});
    }
}

CheckStep sysctl_step(const Config& config) {
    std::string message;
    std::string hint;
    bool warn = false;
    const long long rmem_max = read_sysctl("/proc/sys/net/core/rmem_max");
    if (config.receive.udp_port != 0 && rmem_max >= 0) {
        message += "net.core.rmem_max=" + std::to_string(rmem_max);
        if (rmem_max < static_cast<long long>(config.receive.rcvbuf_bytes)) {
            warn = true;
            message += " is below receive.rcvbuf_bytes=" + std::to_string(config.receive.rcvbuf_bytes) +
                       ": the kernel caps each UDP socket's buffer, so bursts are dropped sooner";
            hint = "sysctl -w net.core.rmem_max=" + std::to_string(config.receive.rcvbuf_bytes) +
                   " and make it permanent with deploy/99-cefd.conf in /etc/sysctl.d";
        }
    }
    const long long backlog = read_sysctl("/proc/sys/net/core/netdev_max_backlog");
    if (config.receive.udp_port != 0 && backlog >= 0) {
        message += std::string(message.empty() ? "" : "; ") + "net.core.netdev_max_backlog=" + std::to_string(backlog);
        if (backlog < 10'000) {
            warn = true;
            message += " (below 10000: packets queue in the kernel before any socket sees them)";
            if (hint.empty()) hint = "install deploy/99-cefd.conf in /etc/sysctl.d and run sysctl --system";
        }
    }
    const long long somaxconn = read_sysctl("/proc/sys/net/core/somaxconn");
    if (config.receive.tcp_port != 0 && somaxconn >= 0)
        message += std::string(message.empty() ? "" : "; ") + "net.core.somaxconn=" + std::to_string(somaxconn);
    if (message.empty()) message = "no UDP or TCP listener";
    return {"sysctls", warn ? Status_::warn : Status_::pass, message, hint};
}

CheckStep uring_step(const Config& config) {
    using E = ReceiveConfig::Engine;
    if (config.receive.engine == E::recvmmsg)
        return {"io_uring", Status_::pass, "receive.engine = \"recvmmsg\": io_uring is not used", ""};
    if (config.receive.engine == E::automatic)  // auto = recvmmsg (receive.cpp says why)
        return {"io_uring", Status_::pass,
                "receive.engine = \"auto\" uses recvmmsg (measured cheaper): io_uring is not used", ""};
    const Status& probe = receive::probe_uring();
    if (probe) return {"io_uring", Status_::pass, "available: the receive engine is io_uring", ""};
    const std::string why = probe.error().describe();
    const std::string hint =
        "allow io_uring: sysctl kernel.io_uring_disabled=0 (Linux 6.6+), or a seccomp profile that allows "
        "io_uring_setup/io_uring_enter (Docker's default blocks them), or a kernel of 5.19 or later";
    if (config.receive.engine == E::io_uring)
        return {"io_uring", Status_::fail, "receive.engine = \"io_uring\" but io_uring is unavailable: " + why, hint};
    return {"io_uring", Status_::warn, "unavailable, so the recvmmsg/epoll fallback is used: " + why, hint};
}

CheckStep spool_step(const Config& config) {
    const SpoolConfig& spool = config.spool;
    if (auto writable = check_dir_writable(spool.dir); !writable)
        return {"spool", Status_::fail, "spool.dir: " + writable.error().describe(),
                "create " + spool.dir + " owned by the user cefd runs as (uid " + std::to_string(::geteuid()) +
                    "), mode 0700, on a writable filesystem"};
    std::string where = spool.dir;
    struct stat st {};
    if (::stat(spool.dir.c_str(), &st) == 0) {
        // Really write: a read-only bind mount or a full quota passes access(2).
        UniqueFd fd(::open(spool.dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
        if (!fd.valid() && errno != EOPNOTSUPP && errno != EISDIR)
            return {"spool", Status_::fail, "cannot create a file in " + spool.dir + " (errno " + std::to_string(errno) +
                                                ": " + std::strerror(errno) + ")",
                    "make " + spool.dir + " writable by uid " + std::to_string(::geteuid()) + " on a writable filesystem"};
        if (fd.valid()) {
            const std::string block(4096, 'x');
            if (::write(fd.get(), block.data(), block.size()) != static_cast<ssize_t>(block.size()) ||
                ::fdatasync(fd.get()) != 0)
                return {"spool", Status_::fail,
                        "writing to " + spool.dir + " failed (errno " + std::to_string(errno) + ": " + std::strerror(errno) + ")",
                        "free space on the spool's filesystem or fix the disk"};
        }
    } else {
        // Not created yet (run creates it): measure the filesystem it will be on.
        where = spool.dir.substr(0, spool.dir.rfind('/'));
        while (!where.empty() && ::stat(where.c_str(), &st) != 0) where = where.substr(0, where.rfind('/'));
        if (where.empty()) where = "/";
    }
    struct statvfs fs {};
    if (::statvfs(where.c_str(), &fs) != 0)
        return {"spool", Status_::warn, "cannot measure free space of " + where, ""};
    const std::uint64_t free_bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
    std::uint64_t used_bytes = 0;
    if (DIR* dir = ::opendir(spool.dir.c_str())) {
        while (const dirent* entry = ::readdir(dir)) {
            struct stat file {};
            const std::string name = entry->d_name;
            if (name.size() > 4 && name.compare(name.size() - 4, 4, ".seg") == 0 &&
                ::stat((spool.dir + "/" + name).c_str(), &file) == 0)
                used_bytes += static_cast<std::uint64_t>(file.st_size);
        }
        ::closedir(dir);
    }
    const std::string message = spool.dir + " writable; " + human_bytes(free_bytes) + " free, spool holds " +
                                human_bytes(used_bytes) + " of spool.max_bytes " + human_bytes(spool.max_bytes);
    if (free_bytes + used_bytes < spool.max_bytes) {
        // The disk fills before the spool reaches its limit: batches are then lost to write
        // errors during an outage, instead of the policy spool.when_full chose.
        return {"spool", Status_::fail, message + ": the disk would fill before the spool reaches its limit",
                "lower spool.max_bytes to at most " + std::to_string((free_bytes + used_bytes) / 10 * 9) +
                    " or give the spool's filesystem more space"};
    }
    return {"spool", Status_::pass, message, ""};
}

/// The test event through a running instance: its /metrics, then its listener.
void running_steps(const Config& config, const CheckOptions& options, const std::string& marker,
                   std::vector<CheckStep>& steps) {
    if (config.metrics.listen.empty()) {
        steps.push_back({"running instance", Status_::fail, "metrics.listen is empty: there is no /metrics to read",
                         "set metrics.listen (e.g. \"127.0.0.1:9514\") and restart cefd"});
        return;
    }
    const std::string before = fetch_metrics(config.metrics.listen);
    if (before.empty()) {
        steps.push_back({"running instance", Status_::fail, "no answer from http://" + config.metrics.listen + "/metrics",
                         "is cefd running with this config? systemctl status cefd"});
        return;
    }
    const double delivered_before = metric_value(before, "cefd_send_delivered_rows_total");
    char line[256];
    std::snprintf(line, sizeof line, "http://%s/metrics answers: delivered rows %.0f, spool pending %.0f, dead-lettered %.0f",
                  config.metrics.listen.c_str(), delivered_before, metric_value(before, "cefd_spool_pending_batches"),
                  metric_value(before, "cefd_send_dead_lettered_batches_total"));
    steps.push_back({"running instance", Status_::pass, line, ""});

    const bool udp = config.receive.udp_port != 0;
    const std::uint16_t port = udp ? config.receive.udp_port : config.receive.tcp_port;
    if (port == 0) {
        steps.push_back({"test event", Status_::warn, "only TLS listens: the test event is not sent over TLS", ""});
        return;
    }
    if (auto sent = send_line(connect_host(config.receive.listen), port, udp, test_event(marker)); !sent) {
        steps.push_back({"test event", Status_::fail, sent.error().describe(), "is the listener up? see `cefd check` without --running"});
        return;
    }
    double delivered = delivered_before;
    const bool ok = wait_for(std::chrono::seconds(options.timeout_s), [&] {
        delivered = metric_value(fetch_metrics(config.metrics.listen), "cefd_send_delivered_rows_total");
        return delivered > delivered_before;
    });
    if (!ok) {
        steps.push_back({"test event", Status_::fail,
                         "sent (marker " + marker + ") but the delivered count did not move in " +
                             std::to_string(options.timeout_s) + " s",
                         "see cefd's log and /metrics: cefd_send_* errors, cefd_spool_pending_batches"});
        return;
    }
    steps.push_back({"test event", Status_::pass,
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
    if (port == 0) return {step, Status_::warn, "only TLS listens: the test event is not sent over TLS", ""};
    auto lock = InstanceLock::acquire(config);
    if (!lock) return {step, Status_::fail, lock.error().describe(), "use `cefd check --running` to check a running cefd"};
    if (auto limit = ensure_file_limit(config, true); !limit) return {step, Status_::fail, limit.error().describe(), ""};
    auto built = Pipeline::build(config);
    if (!built) return {step, Status_::fail, "cannot start the pipeline: " + built.error().describe(), "see the steps above"};
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
    if (!sent) return {step, Status_::fail, sent.error().describe(), "is something filtering loopback traffic?"};
    if (!parsed)
        return {step, Status_::fail, "sent over " + std::string(udp ? "UDP" : "TCP") + " but no row was parsed (" + counters + ")",
                "a local firewall drops the packet, or the listener is not on " + config.receive.listen};
    if (!delivered)
        return {step, Status_::fail,
                "marker " + marker + " parsed but not delivered in " + std::to_string(options.timeout_s) + " s (" + counters + ")",
                "see the token and ingestion steps above; it stays in the spool and goes out at the next start"};
    return {step, Status_::pass,
            "sent through cefd's own " + std::string(udp ? "UDP" : "TCP") + " listener and delivered (" + counters +
                "); marker " + marker + "; in Sentinel: " + kql(marker),
            ""};
}

bool any_failed(const std::vector<CheckStep>& steps) {
    for (const auto& s : steps) {
        if (s.status == Status_::fail) return true;
    }
    return false;
}

}  // namespace

std::vector<CheckStep> run_checks(const CheckOptions& options) {
    std::vector<CheckStep> steps;
    ConfigErrors errors;
    auto loaded = load_config_file(options.config_path, errors);
    if (!loaded) {
        std::string message = std::to_string(errors.list().size()) + " problem(s): ";
        for (std::size_t i = 0; i < errors.list().size(); ++i) message += (i ? "; " : "") + errors.list()[i];
        steps.push_back({"config", Status_::fail, message, "fix the keys named; deploy/cefd.example.toml documents each"});
        return steps;
    }
    const Config& config = *loaded;
    steps.push_back({"config", Status_::pass, options.config_path + " is valid", ""});

    if (auto limit = ensure_file_limit(config, false); !limit) {
        const std::string& text = limit.error().message;
        const auto split = text.find(": set LimitNOFILE");
        steps.push_back({"open files", Status_::fail, text.substr(0, split), split == std::string::npos ? "" : text.substr(split + 2)});
    } else if (!limit.value().empty()) {
        const std::string& text = limit.value();
        const auto split = text.find("; set LimitNOFILE");
        steps.push_back({"open files", Status_::warn, text.substr(0, split), split == std::string::npos ? "" : text.substr(split + 2)});
    } else {
        steps.push_back({"open files", Status_::pass,
                         "RLIMIT_NOFILE allows (or cefd raises it to) the " + std::to_string(file_limit_needed(config)) +
                             " descriptors this config may need", ""});
    }
    if (!options.running) listener_steps(config, steps);
    steps.push_back(sysctl_step(config));
    steps.push_back(uring_step(config));
    steps.push_back(spool_step(config));

    const AzureConfig& azure = config.azure;
    std::vector<AzureTarget> targets = {azure.target};
    targets.insert(targets.end(), azure.extra_targets.begin(), azure.extra_targets.end());
    for (const AzureTarget& target : targets) {
        steps.push_back(connectivity_step("endpoint", azure, target.endpoint + "/"));
    }
    const bool entra = azure.auth == AzureConfig::Auth::client_secret ||
                       azure.auth == AzureConfig::Auth::client_certificate ||
                       azure.auth == AzureConfig::Auth::workload_identity;
    if (entra) {
        steps.push_back(connectivity_step("authority", azure, azure.authority_host + "/"));
    }

    std::string token;
    bool token_ok = true;
    if (azure.auth == AzureConfig::Auth::none) {
        steps.push_back({"token", Status_::pass, "azure.auth = \"none\": no token is sent", ""});
    } else {
        std::optional<ClientAssertion> certificate;
        Status prepared = ok_status();
        if (azure.auth == AzureConfig::Auth::client_certificate) {
            auto loaded_certificate = ClientAssertion::load(azure.client_certificate_file, azure.client_key_file);
            if (loaded_certificate) certificate.emplace(std::move(loaded_certificate).value());
            else prepared = loaded_certificate.error();
        }
        if (!prepared) {
            token_ok = false;
            steps.push_back({"token", Status_::fail, prepared.error().describe(),
                             "check azure.client_certificate_file and client_key_file"});
        } else {
            TokenProvider provider(azure, azure.client_secret.reveal(), std::move(certificate));
            auto fetched = provider.fetch_blocking();
            if (fetched) {
                token = std::move(fetched.value().value);
                steps.push_back({"token", Status_::pass,
                                 "obtained from " + provider.endpoint() + ", valid for " +
                                     std::to_string(fetched.value().lifetime_s) + " s", ""});
            } else {
                token_ok = false;
                const std::string error = fetched.error().describe();
                steps.push_back({"token", Status_::fail, "from " + provider.endpoint() + ": " + error, token_hint(error, azure)});
            }
        }
    }

    const std::string marker = make_marker();
    if (token_ok) {
        for (const AzureTarget& target : targets) steps.push_back(ingestion_step(azure, target, token, marker));
    } else {
        steps.push_back({"ingestion", Status_::fail, "not tried: no token", "fix the token step first"});
    }

    if (options.running) {
        running_steps(config, options, marker, steps);
    } else if (any_failed(steps)) {
        // The event would only wait in the spool (or be dead-lettered) behind the failure.
        steps.push_back({"test event", Status_::fail, "not sent: an earlier step failed", "fix the failures above, then run the check again"});
    } else {
        steps.push_back(pipeline_step(config, options, marker));
    }
    return steps;
}

std::string check_steps_json(const std::vector<CheckStep>& steps) {
    std::string out = "[";
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const CheckStep& s = steps[i];
        out += std::string(i ? ",\n " : "") + "{\"step\":\"" + json_escape(s.step) + "\",\"status\":\"" +
               status_name(s.status) + "\",\"message\":\"" + json_escape(s.message) + "\",\"hint\":\"" +
               json_escape(s.hint) + "\"}";
    }
    return out + "]\n";
}

std::string check_steps_text(const std::vector<CheckStep>& steps) {
    std::string out;
    for (const CheckStep& s : steps) {
        out += std::string(status_name(s.status)) + "  " + s.step + ": " + s.message + "\n";
        if (!s.hint.empty()) out += "      fix: " + s.hint + "\n";
    }
    return out;
}

int check_command(const CheckOptions& options) {
    const std::vector<CheckStep> steps = run_checks(options);
    const std::string text = options.json ? check_steps_json(steps) : check_steps_text(steps);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return any_failed(steps) ? 1 : 0;
}

}  // namespace cefd
