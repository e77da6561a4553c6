#include "tools/azure_standin/standin.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <httplib.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "engine/log.h"
#include "engine/row/row_json.h"
#include "tools/azure_standin/tls_cert.h"

namespace cefd::standin {
namespace {

constexpr std::string_view api_version = "2023-01-01";
// The pre-routing handler moves Content-Encoding here, so httplib hands the handler the raw
// wire bytes instead of inflating them itself (see Standin::create).
constexpr const char* wire_encoding_header = "X-Standin-Wire-Content-Encoding";

std::int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

std::int64_t unix_now_s() noexcept {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string lowercase(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return out;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

std::string random_hex(std::size_t bytes) {
    std::string raw(bytes, '\0');
    std::size_t filled = 0;
    while (filled < bytes) {  // getrandom never blocks after boot for <= 256 bytes
        const ssize_t got = ::getrandom(raw.data() + filled, bytes - filled, 0);
        if (got > 0) filled += static_cast<std::size_t>(got);
        else if (errno != EINTR) CEFD_ASSERT(false);
    }
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex;
    for (const char c : raw) {
        hex += digits[(static_cast<unsigned char>(c) >> 4) & 0xf];
        hex += digits[static_cast<unsigned char>(c) & 0xf];
    }
    return hex;
}

int from_hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string url_decode(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '+') {
            out += ' ';
        } else if (text[i] == '%' && i + 2 < text.size() && from_hex(text[i + 1]) >= 0 && from_hex(text[i + 2]) >= 0) {
            out += static_cast<char>(from_hex(text[i + 1]) * 16 + from_hex(text[i + 2]));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

/// application/x-www-form-urlencoded, parsed here so the check does not depend on httplib's
/// exact Content-Type matching.
std::unordered_map<std::string, std::string> parse_form(std::string_view body) {
    std::unordered_map<std::string, std::string> form;
    while (!body.empty()) {
        const std::size_t amp = body.find('&');
        const std::string_view pair = body.substr(0, amp);
        body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
        const std::size_t equals = pair.find('=');
        form[url_decode(pair.substr(0, equals))] =
            equals == std::string_view::npos ? std::string{} : url_decode(pair.substr(equals + 1));
    }
    return form;
}

void oauth_error(httplib::Response& response, int status, std::string_view error, std::string_view description) {
    response.status = status;
    response.set_content("{\"error\":\"" + std::string(error) + "\",\"error_description\":\"" +
                             json_escape(description) + "\"}",
                         "application/json");
}

bool parse_u64(std::string_view text, std::uint64_t& out) {
    if (text.empty()) return false;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
    return error == std::errc{} && end == text.data() + text.size();
}

constexpr std::array<std::string_view, fault_count> fault_names{"outage", "429", "500", "drop", "drop_before"};

bool write_file_atomically(const std::string& path, std::string_view content) {
    const std::string temporary = path + ".tmp";
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    const bool written = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
    ::close(fd);
    return written && ::rename(temporary.c_str(), path.c_str()) == 0;
}

BodyChecker& thread_checker() {
    // One per httplib worker thread: its buffers grow to the largest request once and stay.
    thread_local BodyChecker checker;
    return checker;
}

}  // namespace

Standin::Standin(StandinOptions options) : options_(std::move(options)) {
    const Knobs& k = options_.knobs;
    knobs_.token_lifetime_s = k.token_lifetime_s;
    knobs_.max_body_bytes = k.max_body_bytes;
    knobs_.max_json_bytes = k.max_json_bytes;
    knobs_.fault_429_every = k.fault_429_every;
    knobs_.retry_after_s = k.retry_after_s;
    knobs_.fault_500_every = k.fault_500_every;
    knobs_.fault_drop_every = k.fault_drop_every;
    knobs_.fault_drop_before_every = k.fault_drop_before_every;
    knobs_.outage_until_ns = k.outage_s == 0 ? 0 : now_ns() + static_cast<std::int64_t>(k.outage_s) * 1'000'000'000;
}

Standin::~Standin() {
    if (out_fd_ >= 0) ::close(out_fd_);
    if (accept_fd_ >= 0) ::close(accept_fd_);
}

Result<std::unique_ptr<Standin>> Standin::create(StandinOptions options) {
    if (options.dcr_ids.empty()) options.dcr_ids.push_back("dcr-00000000000000000000000000000000");
    if (options.streams.empty()) options.streams = {"Custom-CommonSecurityLog", "Microsoft-Syslog"};
    if (options.cert_dir.empty()) {
        options.cert_dir = std::filesystem::path(options.out_path).parent_path().string();
        if (options.cert_dir.empty()) options.cert_dir = ".";
    }
    // Build the tables now: a broken embedded TSV fails at start-up, not on the first request.
    (void)common_security_log_table();
    (void)syslog_table();

    auto standin = std::unique_ptr<Standin>(new Standin(std::move(options)));
    Standin& self = *standin;
    const StandinOptions& opts = self.options_;
    if (!opts.client_cert_file.empty()) {
        auto checker = AssertionChecker::with_certificate(opts.client_cert_file);
        if (!checker.ok()) return checker.error();
        self.assertion_checker_ = std::move(checker).value();
    }
    if (!opts.arc_key_dir.empty()) {
        struct stat st {};
        if (::stat(opts.arc_key_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
            return Error{Errc::config, "--arc-key-dir " + opts.arc_key_dir + " is not a directory"};
    }

    self.out_fd_ = ::open(opts.out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (self.out_fd_ < 0) return Error{Errc::io, errno, "cannot open --out " + opts.out_path};
    if (!opts.accept_log_path.empty()) {
        self.accept_fd_ = ::open(opts.accept_log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (self.accept_fd_ < 0) return Error{Errc::io, errno, "cannot open --accept-log " + opts.accept_log_path};
    }

    if (opts.tls) {
        auto cert = make_self_signed_cert();
        if (!cert.ok()) return cert.error();
        const std::string pem_path = opts.cert_dir + "/standin-ca.pem";
        if (!write_file_atomically(pem_path, cert.value().cert_pem)) {
            return Error{Errc::io, errno, "cannot write " + pem_path};
        }
        // SSL_CTX_use_certificate/PrivateKey take their own references; ours are freed here.
        self.server_ = std::make_unique<httplib::SSLServer>(cert.value().cert.get(), cert.value().key.get());
    } else {
        self.server_ = std::make_unique<httplib::Server>();
    }
    httplib::Server& server = *self.server_;
    if (!server.is_valid()) return Error{Errc::unexpected, "the HTTP(S) server could not be set up"};

    const std::uint32_t threads = std::max<std::uint32_t>(opts.threads, 2);
    server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    // cefd keeps connections open across many batches; httplib's default closes after 5.
    server.set_keep_alive_max_count(1'000'000);
    server.set_keep_alive_timeout(10);
    server.set_tcp_nodelay(true);
    server.set_read_timeout(30);
    server.set_write_timeout(30);
    // A hard ceiling on what httplib buffers for non-ingestion bodies (forms, /control).
    server.set_payload_max_length(256u << 20);

    // httplib inflates gzip request bodies on its own and answers a bad stream with a bare 400.
    // The stand-in must see the wire bytes (to check Content-Length and gzip itself), so the
    // header is renamed before httplib reads the body. The Request is a non-const local of
    // httplib's connection loop, handed to this hook as const: modifying it is defined.
    server.set_pre_routing_handler([](const httplib::Request& request, httplib::Response&) {
        auto& mutable_request = const_cast<httplib::Request&>(request);
        const auto found = mutable_request.headers.find("Content-Encoding");
        if (found != mutable_request.headers.end()) {
            std::string value = found->second;
            mutable_request.headers.erase(found);
            mutable_request.headers.emplace(wire_encoding_header, std::move(value));
        }
        return httplib::Server::HandlerResponse::Unhandled;
    });
    server.Post(R"(/([^/]+)/oauth2/v2\.0/token)",
                [&self](const httplib::Request& q, httplib::Response& r) { self.on_token(q, r); });
    server.Get("/metadata/identity/oauth2/token",
               [&self](const httplib::Request& q, httplib::Response& r) { self.on_imds(q, r); });
    if (!opts.arc_key_dir.empty()) {
        // Real Arc serves the IMDS path on its own port (localhost:40342); the stand-in serves
        // both on one port, so the Arc imitation gets a prefix.
        server.Get("/arc/metadata/identity/oauth2/token",
                   [&self](const httplib::Request& q, httplib::Response& r) { self.on_arc(q, r); });
    }
    server.Post(R"(/dataCollectionRules/([^/]+)/streams/([^/]+))",
                [&self](const httplib::Request& q, httplib::Response& r, const httplib::ContentReader& reader) {
                    self.on_ingest(q, r, reader);
                });
    server.Post("/control", [&self](const httplib::Request& q, httplib::Response& r) { self.on_control(q, r); });
    server.Get("/stats", [&self](const httplib::Request& q, httplib::Response& r) { self.on_stats(q, r); });
    server.Get("/healthz", [](const httplib::Request&, httplib::Response& r) { r.set_content("ok\n", "text/plain"); });
    server.set_exception_handler([](const httplib::Request& request, httplib::Response& response, std::exception_ptr) {
        CEFD_LOG_EVERY(1, error, "azure-standin: exception while handling %s", request.path.c_str());
        response.status = 500;
        response.set_content(R"({"error":{"code":"InternalServerError","message":"stand-in exception"}})",
                             "application/json");
    });

    if (opts.port == 0) {
        self.port_ = server.bind_to_any_port(opts.listen_address);
    } else {
        self.port_ = server.bind_to_port(opts.listen_address, opts.port) ? opts.port : -1;
    }
    if (self.port_ <= 0) {
        return Error{Errc::address_in_use, "cannot listen on " + opts.listen_address + ":" + std::to_string(opts.port)};
    }
    const bool ipv6 = opts.listen_address.find(':') != std::string::npos;
    self.base_url_ = std::string(opts.tls ? "https://" : "http://") + (ipv6 ? "[" : "") + opts.listen_address +
                     (ipv6 ? "]" : "") + ":" + std::to_string(self.port_);
    return standin;
}

bool Standin::run() { return server_->listen_after_bind(); }

void Standin::stop() { server_->stop(); }

bool Standin::in_outage() const noexcept {
    return now_ns() < knobs_.outage_until_ns.load(std::memory_order_relaxed);
}

std::string Standin::issue_token(std::uint64_t lifetime_s) {
    std::string token = "standin." + random_hex(24);
    const std::int64_t now = now_ns();
    const std::int64_t expiry = now + static_cast<std::int64_t>(lifetime_s) * 1'000'000'000;
    {
        std::lock_guard lock(tokens_mutex_);
        // Bounded: long runs re-issue tokens; forget expired ones once the map gets large.
        if (token_expiry_ns_.size() >= 100'000) {
            std::erase_if(token_expiry_ns_, [now](const auto& entry) { return entry.second <= now; });
        }
        token_expiry_ns_[token] = expiry;
    }
    stats_.tokens_issued.fetch_add(1, std::memory_order_relaxed);
    return token;
}

Reject Standin::check_token(const httplib::Request& request) const {
    const std::string authorization = request.get_header_value("Authorization");
    constexpr std::string_view bearer = "Bearer ";
    if (authorization.size() <= bearer.size() || lowercase(authorization.substr(0, bearer.size())) != "bearer ") {
        return Reject::token_missing;
    }
    const std::string token(trim(std::string_view(authorization).substr(bearer.size())));
    std::lock_guard lock(tokens_mutex_);
    const auto found = token_expiry_ns_.find(token);
    if (found == token_expiry_ns_.end()) return Reject::token_unknown;
    if (found->second <= now_ns()) return Reject::token_expired;
    return Reject::none;
}

void Standin::on_token(const httplib::Request& request, httplib::Response& response) {
    if (in_outage()) {
        stats_.faults[static_cast<std::size_t>(Fault::outage)].fetch_add(1, std::memory_order_relaxed);
        return oauth_error(response, 503, "temporarily_unavailable", "stand-in outage (--outage-s)");
    }
    const auto refuse = [&](int status, std::string_view error, std::string_view description) {
        stats_.token_rejected.fetch_add(1, std::memory_order_relaxed);
        CEFD_LOG_EVERY(1, warn, "azure-standin: token request refused: %s", std::string(description).c_str());
        oauth_error(response, status, error, description);
    };
    const std::string tenant = request.matches[1];
    const auto form = parse_form(request.body);
    const auto field = [&form](const char* name) {
        const auto found = form.find(name);
        return found == form.end() ? std::string{} : found->second;
    };
    if (tenant != options_.tenant_id) {
        return refuse(400, "invalid_request", "AADSTS90002: Tenant '" + tenant + "' not found.");
    }
    if (field("grant_type") != "client_credentials") {
        return refuse(400, "unsupported_grant_type",
                      "AADSTS70003: The app requested an unsupported grant type '" + field("grant_type") + "'.");
    }
    if (field("client_id") != options_.client_id) {
        return refuse(400, "unauthorized_client", "AADSTS700016: Application with identifier '" + field("client_id") +
                                                      "' was not found in the directory.");
    }
    const std::string scope = field("scope");
    if (scope != options_.audience + "/.default" && scope != options_.audience + "//.default") {
        return refuse(400, "invalid_scope", "AADSTS70011: The provided value for the input parameter 'scope' is "
                                            "not valid: '" + scope + "'. Expected " + options_.audience + "/.default.");
    }
    if (form.contains("client_secret")) {
        if (field("client_secret") != options_.client_secret) {
            return refuse(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.");
        }
    } else if (form.contains("client_assertion")) {
        if (field("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
            return refuse(400, "invalid_request", "AADSTS50027: client_assertion_type must be "
                                                  "urn:ietf:params:oauth:client-assertion-type:jwt-bearer.");
        }
        // Signed by --client-cert's key when one is given; the claims and shape always.
        const AssertionVerdict verdict =
            assertion_checker_.verify(field("client_assertion"), base_url_ + "/" + tenant + "/oauth2/v2.0/token",
                                      options_.client_id, unix_now_s());
        if (!verdict.ok()) return refuse(verdict.status, verdict.error, verdict.description);
    } else {
        return refuse(401, "invalid_client",
                      "AADSTS7000216: 'client_assertion', 'client_secret' or 'request' is required.");
    }
    const std::uint64_t lifetime = knobs_.token_lifetime_s.load(std::memory_order_relaxed);
    const std::string token = issue_token(lifetime);
    response.set_content("{\"token_type\":\"Bearer\",\"expires_in\":" + std::to_string(lifetime) +
                             ",\"ext_expires_in\":" + std::to_string(lifetime) + ",\"access_token\":\"" + token +
                             "\"}",
                         "application/json");
}

bool Standin::check_identity_request(const httplib::Request& request, httplib::Response& response,
                                     const char* what) {
    if (in_outage()) {
        stats_.faults[static_cast<std::size_t>(Fault::outage)].fetch_add(1, std::memory_order_relaxed);
        oauth_error(response, 503, "temporarily_unavailable", "stand-in outage (--outage-s)");
        return false;
    }
    const auto refuse = [&](int status, std::string_view error, std::string_view description) {
        stats_.token_rejected.fetch_add(1, std::memory_order_relaxed);
        CEFD_LOG_EVERY(1, warn, "azure-standin: %s request refused: %s", what, std::string(description).c_str());
        oauth_error(response, status, error, description);
        return false;
    };
    if (lowercase(request.get_header_value("Metadata")) != "true") {
        return refuse(400, "invalid_request", "Required metadata header not specified");
    }
    if (!request.has_param("api-version")) {
        return refuse(400, "invalid_request", "Required query variable 'api-version' is missing");
    }
    std::string resource = request.get_param_value("resource");
    if (!resource.empty() && resource.back() == '/') resource.pop_back();
    if (resource != options_.audience) {
        return refuse(400, "invalid_resource", "AADSTS500011: The resource principal named '" +
                                                   request.get_param_value("resource") + "' was not found.");
    }
    if (request.has_param("client_id") && request.get_param_value("client_id") != options_.client_id) {
        return refuse(400, "invalid_request", "Identity not found");
    }
    return true;
}

void Standin::answer_identity_token(httplib::Response& response) {
    const std::uint64_t lifetime = knobs_.token_lifetime_s.load(std::memory_order_relaxed);
    const std::string token = issue_token(lifetime);
    const std::int64_t now = unix_now_s();
    // Real IMDS sends every number as a JSON string; cefd must cope with that, so we do too.
    response.set_content("{\"access_token\":\"" + token + "\",\"client_id\":\"" + json_escape(options_.client_id) +
                             "\",\"expires_in\":\"" + std::to_string(lifetime) + "\",\"expires_on\":\"" +
                             std::to_string(now + static_cast<std::int64_t>(lifetime)) + "\",\"ext_expires_in\":\"" +
                             std::to_string(lifetime) + "\",\"not_before\":\"" + std::to_string(now) +
                             "\",\"resource\":\"" + json_escape(options_.audience) +
                             "\",\"token_type\":\"Bearer\"}",
                         "application/json");
}

void Standin::on_imds(const httplib::Request& request, httplib::Response& response) {
    if (!check_identity_request(request, response, "IMDS")) return;
    answer_identity_token(response);
}

void Standin::on_arc(const httplib::Request& request, httplib::Response& response) {
    if (!check_identity_request(request, response, "Arc")) return;
    const auto refuse = [&](int status, std::string_view description) {
        stats_.token_rejected.fetch_add(1, std::memory_order_relaxed);
        CEFD_LOG_EVERY(1, warn, "azure-standin: Arc request refused: %s", std::string(description).c_str());
        oauth_error(response, status, "invalid_request", description);
    };
    const std::string version = request.get_param_value("api-version");
    if (version != "2019-11-01" && version != "2020-06-01") {
        return refuse(400, "Arc supports api-version 2019-11-01 and 2020-06-01, got '" + version + "'");
    }
    const std::string authorization = request.get_header_value("Authorization");
    if (authorization.empty()) {
        // The challenge: a fresh secret in a fresh .key file that only its owner and group may
        // read (the agent's himds group on a real machine).
        const std::string secret = random_hex(32);
        const std::string path = options_.arc_key_dir + "/" + random_hex(16) + ".key";
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        const bool written = fd >= 0 && ::write(fd, secret.data(), secret.size()) == static_cast<ssize_t>(secret.size());
        if (fd >= 0) ::close(fd);
        if (!written) return refuse(500, "stand-in could not write the challenge key file");
        {
            std::lock_guard lock(arc_mutex_);
            if (arc_keys_.size() >= 10'000) arc_keys_.clear();  // bounded; old challenges just fail
            arc_keys_[secret] = path;
        }
        stats_.arc_challenges.fetch_add(1, std::memory_order_relaxed);
        response.status = 401;
        response.set_header("WWW-Authenticate", "Basic realm=" + path);
        response.set_content(R"({"error":"unauthorized_client","error_description":"N/A: the key file is the challenge"})",
                             "application/json");
        return;
    }
    constexpr std::string_view basic = "Basic ";
    if (!authorization.starts_with(basic)) return refuse(401, "Authorization must be 'Basic <key file content>'");
    {
        std::lock_guard lock(arc_mutex_);
        const auto found = arc_keys_.find(authorization.substr(basic.size()));
        if (found == arc_keys_.end()) return refuse(401, "the Basic credential is not a key this endpoint issued");
        ::unlink(found->second.c_str());  // one use, as on a real agent
        arc_keys_.erase(found);
    }
    answer_identity_token(response);
}

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
    if (request.get_param_value("api-version") != api_version) {
        return reject(response, Reject::bad_api_version, "api-version must be 2023-01-01, got '" +
                                                             request.get_param_value("api-version") + "'.");
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

void Standin::on_control(const httplib::Request& request, httplib::Response& response) {
    struct Knob {
        const char* name;
        std::atomic<std::uint64_t>* value;
    };
    const std::array<Knob, 8> knobs{{
        {"fault_429_every", &knobs_.fault_429_every},
        {"retry_after_s", &knobs_.retry_after_s},
        {"fault_500_every", &knobs_.fault_500_every},
        {"fault_drop_every", &knobs_.fault_drop_every},
        {"fault_drop_before_every", &knobs_.fault_drop_before_every},
        {"max_body_bytes", &knobs_.max_body_bytes},
        {"max_json_bytes", &knobs_.max_json_bytes},
        {"token_lifetime_s", &knobs_.token_lifetime_s},
    }};
    // Check every parameter before changing any: a bad request changes nothing.
    std::string errors;
    for (const auto& [key, value] : request.params) {
        std::uint64_t number = 0;
        const bool known = key == "outage_s" || std::any_of(knobs.begin(), knobs.end(), [&](const Knob& knob) {
                               return key == knob.name;
                           });
        if (!known) errors += "unknown knob '" + key + "'; ";
        else if (!parse_u64(value, number)) errors += key + " must be an unsigned integer; ";
    }
    if (!errors.empty()) {
        response.status = 400;
        response.set_content("{\"error\":{\"code\":\"InvalidControl\",\"message\":\"" + json_escape(errors) + "\"}}",
                             "application/json");
        return;
    }
    for (const auto& [key, value] : request.params) {
        std::uint64_t number = 0;
        (void)parse_u64(value, number);
        if (key == "outage_s") {
            knobs_.outage_until_ns = number == 0 ? 0 : now_ns() + static_cast<std::int64_t>(number) * 1'000'000'000;
        }
        for (const Knob& knob : knobs) {
            if (key == knob.name) knob.value->store(number, std::memory_order_relaxed);
        }
    }
    std::string body = "{";
    for (const Knob& knob : knobs) {
        // Appended piece by piece: `"\"" + std::string(...)` trips GCC 12's -Wrestrict false
        // positive at -O3 (GCC bug 105329).
        body += '"';
        body += knob.name;
        body += "\":";
        body += std::to_string(knob.value->load(std::memory_order_relaxed));
        body += ',';
    }
    const std::int64_t outage_left_ns = knobs_.outage_until_ns.load(std::memory_order_relaxed) - now_ns();
    body += "\"outage_remaining_ms\":" + std::to_string(outage_left_ns > 0 ? outage_left_ns / 1'000'000 : 0) + "}";
    response.set_content(body, "application/json");
}

void Standin::on_stats(const httplib::Request&, httplib::Response& response) {
    const auto value = [](const std::atomic<std::uint64_t>& counter) {
        return std::to_string(counter.load(std::memory_order_relaxed));
    };
    std::string body = "{\"requests\":" + value(stats_.requests) + ",\"accepted_requests\":" +
                       value(stats_.accepted_requests) + ",\"rows\":" + value(stats_.rows) +
                       ",\"rejected_requests\":" + value(stats_.rejected_requests) + ",\"rejected\":{";
    bool first = true;
    for (std::size_t i = 1; i < reject_count; ++i) {
        if (stats_.rejected[i].load(std::memory_order_relaxed) == 0) continue;
        body += std::string(first ? "" : ",") + "\"" + std::string(reject_name(static_cast<Reject>(i))) +
                "\":" + value(stats_.rejected[i]);
        first = false;
    }
    body += "},\"tokens_issued\":" + value(stats_.tokens_issued) + ",\"token_rejected\":" +
            value(stats_.token_rejected) + ",\"arc_challenges\":" + value(stats_.arc_challenges) + ",\"faults\":{";
    for (std::size_t i = 0; i < fault_count; ++i) {
        body += std::string(i == 0 ? "" : ",") + "\"" + std::string(fault_names[i]) + "\":" + value(stats_.faults[i]);
    }
    body += "},\"bytes_in\":" + value(stats_.bytes_in) + ",\"bytes_json\":" + value(stats_.bytes_json) +
            ",\"store_errors\":" + value(stats_.store_errors) +
            ",\"bench_unchecked_requests\":" + value(stats_.bench_unchecked_requests) + "}";
    response.set_content(body, "application/json");
}

}  // namespace cefd::standin
