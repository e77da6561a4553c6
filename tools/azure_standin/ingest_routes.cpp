// Ingest route: the Logs Ingestion API's POST (token, DCR and stream checks, faults, gunzip and
// row checks via BodyChecker, 413 on size), the rows and accept logs it writes (--out,
// --accept-log) and dropping a connection for the drop faults.
#include "tools/azure_standin/standin.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "engine/log.h"
#include "engine/row/row_json.h"
#include "tools/azure_standin/standin_common.h"

namespace cefd::standin {

using namespace detail;

void Standin::reject(httplib::Response& response, Reject reason, const std::string& message) {
    stats_.rejected_requests.fetch_add(1, std::memory_order_relaxed);
    stats_.rejected[static_cast<std::size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
    CEFD_LOG_EVERY(1, warn, "azure-standin: rejected (%s): %s", std::string(reject_name(reason)).c_str(),
                   message.c_str());
    response.status = reject_status(reason);
    response.set_header("x-ms-error-code", std::string(reject_code(reason)));
    response.set_content("{\"error\":{\"code\":\"" + std::string(reject_code(reason)) + "\",\"message\":\"" +
                             json_escape(message) + "\"}}",
                         "application/json");
}

void Standin::on_ingest(const httplib::Request& request, httplib::Response& response,
                        const httplib::ContentReader& reader) {
    stats_.requests.fetch_add(1, std::memory_order_relaxed);
    BodyChecker& checker = thread_checker();

    // Read the whole body first, whatever the verdict: a keep-alive connection must be left at
    // the start of the next request. Bytes past max_body_bytes are counted and discarded.
    const std::size_t max_body = knobs_.max_body_bytes.load(std::memory_order_relaxed);
    char* wire = checker.wire_buffer(max_body);
    std::size_t wire_bytes = 0;
    std::size_t wire_seen = 0;
    reader([&](const char* data, std::size_t length) {
        if (wire_seen + length <= max_body) {
            std::memcpy(wire + wire_seen, data, length);
            wire_bytes = wire_seen + length;
        }
        wire_seen += length;
        return true;
    });
    stats_.bytes_in.fetch_add(wire_seen, std::memory_order_relaxed);

    if (in_outage()) {
        stats_.faults[static_cast<std::size_t>(Fault::outage)].fetch_add(1, std::memory_order_relaxed);
        return reject(response, Reject::outage, "The service is temporarily unavailable (stand-in --outage-s).");
    }
    if (const Reject reason = check_token(request); reason != Reject::none) {
        const char* what = reason == Reject::token_missing   ? "No bearer token in the Authorization header."
                           : reason == Reject::token_expired ? "The access token has expired."
                                                             : "The access token is not one this service issued.";
        return reject(response, reason, what);
    }
    const std::string dcr = request.matches[1];
    const std::string stream = request.matches[2];
    if (std::find(options_.forbidden_dcrs.begin(), options_.forbidden_dcrs.end(), dcr) != options_.forbidden_dcrs.end()) {
        return reject(response, Reject::forbidden_dcr,
                      "The authentication token provided does not have access to ingest data for the data "
                      "collection rule with immutable Id '" + dcr + "'.");
    }
    if (std::find(options_.dcr_ids.begin(), options_.dcr_ids.end(), dcr) == options_.dcr_ids.end()) {
        return reject(response, Reject::unknown_dcr, "Data collection rule with immutable Id '" + dcr + "' not found.");
    }
    if (std::find(options_.streams.begin(), options_.streams.end(), stream) == options_.streams.end()) {
        return reject(response, Reject::unknown_stream, "Stream '" + stream + "' is not declared in DCR '" + dcr + "'.");
    }
    if (const std::string version = request.get_param_value("api-version");
        std::find(api_versions.begin(), api_versions.end(), version) == api_versions.end()) {
        return reject(response, Reject::bad_api_version,
                      "api-version must be 2023-01-01 (or 2021-11-01-preview, 2023-04-01-preview), got '" + version +
                          "'.");
    }
    const std::string content_type = request.get_header_value("Content-Type");
    if (lowercase(trim(std::string_view(content_type).substr(0, content_type.find(';')))) != "application/json") {
        return reject(response, Reject::bad_content_type,
                      "Content-Type must be application/json, got '" + content_type + "'.");
    }
    std::uint64_t declared = 0;
    (void)parse_u64(request.get_header_value("Content-Length"), declared);  // absent (chunked): 0
    if (declared > max_body || wire_seen > max_body) {
        return reject(response, Reject::body_too_large,
                      "Maximum allowed content length: " + std::to_string(max_body) +
                          " bytes (1 MB). Provided content length: " + std::to_string(std::max<std::uint64_t>(declared, wire_seen)) +
                          " bytes.");
    }
    const std::string encoding = lowercase(trim(request.get_header_value(wire_encoding_header)));
    if (!encoding.empty() && encoding != "gzip" && encoding != "identity") {
        return reject(response, Reject::unsupported_encoding,
                      "Content-Encoding '" + encoding + "' is not supported; use gzip.");
    }
    const BodyLimits limits{.max_json_bytes = knobs_.max_json_bytes.load(std::memory_order_relaxed)};
    // --bench: the full checks on one request in bench_check_every (the first included), a
    // decompress-and-split on the rest, so the sink costs little next to cefd.
    const std::uint64_t check_every = options_.bench_check_every;
    const bool full_checks =
        check_every == 0 || stats_.requests.load(std::memory_order_relaxed) % check_every == 1 || check_every == 1;
    const Reject verdict = full_checks
                               ? checker.check(wire_bytes, encoding == "gzip", table_for_stream(stream), limits)
                               : checker.split_rows(wire_bytes, encoding == "gzip", limits);
    if (!full_checks) stats_.bench_unchecked_requests.fetch_add(1, std::memory_order_relaxed);
    if (verdict != Reject::none) return reject(response, verdict, checker.message());
    stats_.bytes_json.fetch_add(checker.json_bytes(), std::memory_order_relaxed);
    // What Azure takes but changes: said, not refused, as the service does.
    if (const std::size_t n = checker.long_values(); n != 0) {
        stats_.long_values.fetch_add(n, std::memory_order_relaxed);
        CEFD_LOG_EVERY(10, warn, "azure-standin: %zu value(s) over %zu bytes: Azure would truncate them (/stats long_values)",
                       n, azure_value_bytes_max);
    }
    if (const std::size_t n = checker.times_out_of_range(); n != 0) {
        stats_.times_out_of_range.fetch_add(n, std::memory_order_relaxed);
        CEFD_LOG_EVERY(10, warn,
                       "azure-standin: %zu TimeGenerated value(s) over 2 days old or 1 day ahead: Azure would replace "
                       "them with its receive time (/stats time_generated_out_of_range)",
                       n);
    }

    // Faults apply to requests that passed every check, numbered 1, 2, 3, ...
    const std::uint64_t sequence = stats_.valid_requests.fetch_add(1, std::memory_order_relaxed) + 1;
    const auto due = [sequence](const std::atomic<std::uint64_t>& every) {
        const std::uint64_t n = every.load(std::memory_order_relaxed);
        return n != 0 && sequence % n == 0;
    };
    const auto count_fault = [this](Fault fault) {
        stats_.faults[static_cast<std::size_t>(fault)].fetch_add(1, std::memory_order_relaxed);
    };
    if (due(knobs_.fault_drop_before_every)) {
        count_fault(Fault::drop_before);
        CEFD_LOG_EVERY(1, info, "azure-standin: fault drop_before on request %llu",
                       static_cast<unsigned long long>(sequence));
        return abort_connection(request);
    }
    if (due(knobs_.fault_429_every)) {
        count_fault(Fault::http_429);
        response.status = 429;
        response.set_header("Retry-After", std::to_string(knobs_.retry_after_s.load(std::memory_order_relaxed)));
        response.set_header("x-ms-error-code", "TooManyRequests");
        response.set_content(R"({"error":{"code":"TooManyRequests","message":"Rate limit exceeded (stand-in fault)."}})",
                             "application/json");
        return;
    }
    if (due(knobs_.fault_500_every)) {
        count_fault(Fault::http_500);
        response.status = 500;
        response.set_content(R"({"error":{"code":"InternalServerError","message":"stand-in fault"}})",
                             "application/json");
        return;
    }
    if (!append_rows(checker.rows_jsonl(), checker.row_count())) {
        response.status = 500;
        response.set_content(R"({"error":{"code":"InternalServerError","message":"stand-in could not write --out"}})",
                             "application/json");
        return;
    }
    stats_.accepted_requests.fetch_add(1, std::memory_order_relaxed);
    stats_.rows.fetch_add(checker.row_count(), std::memory_order_relaxed);
    if (due(knobs_.fault_drop_every)) {
        count_fault(Fault::drop);
        CEFD_LOG_EVERY(1, info, "azure-standin: fault drop (after storing) on request %llu",
                       static_cast<unsigned long long>(sequence));
        return abort_connection(request);
    }
    response.status = 204;
}

bool Standin::append_rows(std::string_view jsonl, std::size_t rows) {
    std::lock_guard lock(out_mutex_);
    if (!write_all_rows(jsonl)) return false;
    if (accept_fd_ >= 0) {
        // Taken after the rows' write returned: the moment they became readable in --out.
        timespec now{};
        ::clock_gettime(CLOCK_REALTIME, &now);
        char line[48];
        const int length = std::snprintf(line, sizeof line, "%zu %lld\n", rows,
                                         static_cast<long long>(now.tv_sec) * 1'000'000'000LL + now.tv_nsec);
        if (::write(accept_fd_, line, static_cast<std::size_t>(length)) != length) {
            stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
        }
    }
    return true;
}

bool Standin::write_all_rows(std::string_view jsonl) {
    // Called with out_mutex_ held. One write per request in the common case; the loop only
    // finishes a short write.
    for (int attempt = 0; attempt < 1000 && !jsonl.empty(); ++attempt) {
        const ssize_t written = ::write(out_fd_, jsonl.data(), jsonl.size());
        if (written < 0) {
            if (errno == EINTR) continue;
            stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
            CEFD_LOG_EVERY(1, error, "azure-standin: write --out failed: %s", std::strerror(errno));
            return false;
        }
        jsonl.remove_prefix(static_cast<std::size_t>(written));
    }
    return jsonl.empty();
}

void Standin::abort_connection(const httplib::Request& request) const {
    // httplib 0.11 does not hand handlers the socket. The connection is the one socket of this
    // process whose local port is ours and whose peer is the request's remote address.
    DIR* directory = ::opendir("/proc/self/fd");
    if (directory == nullptr) return;
    while (const dirent* entry = ::readdir(directory)) {
        int fd = -1;
        const std::string_view name = entry->d_name;
        if (std::from_chars(name.data(), name.data() + name.size(), fd).ec != std::errc{} || fd < 0) continue;
        sockaddr_storage local{};
        sockaddr_storage peer{};
        socklen_t local_length = sizeof local;
        socklen_t peer_length = sizeof peer;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length) != 0 ||
            ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_length) != 0) {
            continue;
        }
        char address[INET6_ADDRSTRLEN] = {};
        int local_port = 0;
        int peer_port = 0;
        if (peer.ss_family == AF_INET) {
            const auto* in4 = reinterpret_cast<const sockaddr_in*>(&peer);
            ::inet_ntop(AF_INET, &in4->sin_addr, address, sizeof address);
            peer_port = ntohs(in4->sin_port);
            local_port = ntohs(reinterpret_cast<const sockaddr_in*>(&local)->sin_port);
        } else if (peer.ss_family == AF_INET6) {
            const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&peer);
            ::inet_ntop(AF_INET6, &in6->sin6_addr, address, sizeof address);
            peer_port = ntohs(in6->sin6_port);
            local_port = ntohs(reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port);
        } else {
            continue;
        }
        if (local_port != port_ || peer_port != request.remote_port || request.remote_addr != address) continue;
        // Linger 0: the close that follows sends a reset, as a dropped load balancer flow would.
        const linger abort_on_close{.l_onoff = 1, .l_linger = 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
        ::shutdown(fd, SHUT_RDWR);
        break;
    }
    ::closedir(directory);
}

}  // namespace cefd::standin
