// engine/pipeline/check_probe.cpp: `cefd check`'s HTTP probes (libcurl, the same library and TLS
// settings as the sender): one request with its timings, certificate and Date header, and the
// connectivity step that turns a failure into the layer (DNS, TCP, TLS, clock) and its fix.
#include <strings.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "engine/pipeline/check_steps.h"

namespace cefd::check_steps {
namespace {

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

}  // namespace

Probe http_probe(const AzureConfig& azure, const std::string& url, const std::string& method,
                 const std::vector<std::string>& headers, const std::string& body) {
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

CheckStep connectivity_step(const std::string& step, const AzureConfig& azure, const std::string& url) {
    const Probe probe = http_probe(azure, url, "GET");
    switch (probe.rc) {
        case CURLE_OK: break;
        case CURLE_COULDNT_RESOLVE_HOST:  // DNS: a typo in the host, or no resolver for a private endpoint
            return {step, StepStatus::fail, "DNS: cannot resolve the host of " + url + " (" + probe.error + ")",
                    "check the host name in the config and /etc/resolv.conf; a private link endpoint needs "
                    "its private DNS zone"};
        case CURLE_COULDNT_RESOLVE_PROXY:
            return {step, StepStatus::fail, "DNS: cannot resolve the proxy (" + probe.error + ")",
                    "check azure.proxy and the https_proxy variable"};
        case CURLE_COULDNT_CONNECT:       // refused or unreachable: a firewall, NSG or no route
        case CURLE_OPERATION_TIMEDOUT:
            return {step, StepStatus::fail, "TCP: cannot connect to " + url + " (" + probe.error + ")",
                    "allow outbound TCP 443 to this host (firewall, NSG, azure.proxy)"};
        case CURLE_PEER_FAILED_VERIFICATION:  // an untrusted chain, or the name does not match
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CERTPROBLEM:
            return {step, StepStatus::fail, "TLS: " + probe.error,
                    "the server's certificate does not chain to a trusted CA or does not match its name: "
                    "behind a TLS-inspecting proxy, put its CA in azure.ca_file; otherwise check the host name and "
                    "azure.ca_file (currently " + (azure.ca_file.empty() ? std::string("the system store") : azure.ca_file) + ")"};
        default:
            return {step, StepStatus::fail, "cannot reach " + url + ": " + probe.error,
                    "check the URL, azure.proxy and outbound HTTPS"};
    }
    char timing[160];
    std::snprintf(timing, sizeof timing, "DNS %.0f ms, TCP %.0f ms, TLS %.0f ms", probe.dns_ms,
                  probe.connect_ms - probe.dns_ms, probe.tls_ms > 0 ? probe.tls_ms - probe.connect_ms : 0.0);
    std::string message = url + " (" + probe.address + "): " + timing +
                          (probe.leaf.empty() ? std::string(", no TLS") : ", certificate " + probe.leaf + " verified");
    if (probe.date.empty()) return {step, StepStatus::pass, message + "; no Date header, clock skew not checked", ""};
    const time_t server = curl_getdate(probe.date.c_str(), nullptr);
    if (server < 0) return {step, StepStatus::pass, message + "; unreadable Date header", ""};
    const long long skew = static_cast<long long>(std::time(nullptr)) - static_cast<long long>(server);
    message += "; clock skew " + std::to_string(skew) + " s";
    // Entra ID refuses assertions more than 5 minutes ahead; tokens look expired early.
    if (skew > 300 || skew < -300)
        return {step, StepStatus::fail, message, "sync this machine's clock (chrony or systemd-timesyncd)"};
    if (skew > 30 || skew < -30)
        return {step, StepStatus::warn, message, "sync this machine's clock (chrony or systemd-timesyncd)"};
    return {step, StepStatus::pass, message, ""};
}

}  // namespace cefd::check_steps
