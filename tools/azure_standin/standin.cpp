// The stand-in's server: construction (TLS certificate, the --out and --accept-log files), the
// route table (which path goes to which handler, the pre-routing that keeps Content-Encoding
// raw), run/stop and the outage clock. The handlers
// live in identity_routes.cpp, ingest_routes.cpp and control_routes.cpp; main.cpp has the flags.
#include "tools/azure_standin/standin.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <httplib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "engine/log.h"
#include "tools/azure_standin/standin_common.h"
#include "tools/azure_standin/tls_cert.h"

namespace cefd::standin {

using namespace detail;

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
    if (options.streams.empty()) options.streams = {"Custom-CommonSecurityLog", "Custom-Syslog"};
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
        // Line n of the accept log covers rows counted from the start of --out, so the two must
        // start together. A new --out with an old accept log: the log is emptied (it cannot match).
        // An old --out with a new accept log: refused (its rows would take later acceptances).
        struct stat out_st {};
        struct stat accept_st {};
        const bool out_empty = ::fstat(self.out_fd_, &out_st) == 0 && out_st.st_size == 0;
        const bool accept_empty = ::stat(opts.accept_log_path.c_str(), &accept_st) != 0 || accept_st.st_size == 0;
        if (!out_empty && accept_empty)
            return Error{Errc::config, "--accept-log " + opts.accept_log_path + " is new but --out " + opts.out_path +
                                           " already holds rows: the latencies would not match; start both anew"};
        int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC;
        if (out_empty && !accept_empty) {
            flags |= O_TRUNC;
            CEFD_LOG(warn, "azure-standin: --out %s is empty: emptying the older --accept-log %s to match it",
                     opts.out_path.c_str(), opts.accept_log_path.c_str());
        }
        self.accept_fd_ = ::open(opts.accept_log_path.c_str(), flags, 0644);
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

}  // namespace cefd::standin
