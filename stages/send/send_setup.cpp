// stages/send/send_setup.cpp: the sender's life outside the loop: building Sender::Impl and
// its libcurl handles (TLS verification always on), loading credentials, switching targets and
// credentials on a live reconfigure (SIGHUP) at a batch boundary, the Sender facade, and the
// send_* metrics.
#include <fstream>
#include <memory>

#include "engine/log.h"
#include "stages/send/sender_impl.h"

namespace cefd {

Sender::Impl::Impl(const AzureConfig& config, BatchSource& source, std::string client_secret,
                   std::optional<ClientAssertion> certificate)
    : config_(config), source_(source), token_(config_, std::move(client_secret), std::move(certificate)),
      slots_(config.max_in_flight), random_(std::random_device{}()) {
    build_targets();
}

Sender::Impl::~Impl() {
    for (auto& slot : slots_)
        if (slot.work) curl_multi_remove_handle(multi_, slot.easy.get());
    if (token_.in_flight()) curl_multi_remove_handle(multi_, token_.easy());
}

/// targets_ from config_: the first target, then [[azure.targets]] in file order.
/// A reload keeps a 429's pause on a target with the same endpoint and DCR: Azure's
/// Retry-After still holds whatever the new config says (a rebuilt target used to start
/// unpaused, and new batches went out inside the window).
void Sender::Impl::build_targets() {
    const std::vector<Target> previous = std::move(targets_);
    targets_.clear();
    targets_.push_back(make_target(config_.target, config_.max_in_flight));
    for (const auto& t : config_.extra_targets) targets_.push_back(make_target(t, config_.max_in_flight));
    for (Target& target : targets_)
        for (const Target& old : previous)
            if (old.config.endpoint == target.config.endpoint && old.config.dcr_id == target.config.dcr_id)
                target.paused_until_ns = old.paused_until_ns;
}

Status Sender::Impl::init() {
    multi_ = multi_handle_.get();
    if (multi_ == nullptr) return Error{Errc::unexpected, "curl_multi_init failed"};
    // One more than the slots: a token refresh to the same host (tests, private endpoints)
    // must not queue behind max_in_flight slow ingestion requests.
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(config_.max_in_flight + 1));
    for (auto& slot : slots_) {
        CURL* c = slot.easy.get();
        if (c == nullptr) return Error{Errc::unexpected, "curl_easy_init failed"};
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);  // always: see AzureConfig::ca_file
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
        if (!config_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, config_.ca_file.c_str());
        if (!config_.proxy.empty()) curl_easy_setopt(c, CURLOPT_PROXY, config_.proxy.c_str());
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config_.connect_timeout_ms));
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.request_timeout_ms));
        curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        // libcurl copies a POST body through this buffer (64 KiB by default) into SSL_write: a
        // typical batch (~170 KiB gzipped) then goes in one pass instead of three. About 9 %
        // less sender CPU at 100k/s for 256 KiB per slot (bench/README.md, "curl upload buffer").
        curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 256L * 1024);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &curl_append_to_string);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &slot.response);
        curl_easy_setopt(c, CURLOPT_PRIVATE, &slot);
        // libcurl resends a request by itself, once, when a reused connection dies before
        // any answer (it cannot be turned off). If the server had stored the batch, that is
        // a duplicate we must count; the only sign of it is this informational line.
        curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
        curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, &Impl::on_curl_debug);
        curl_easy_setopt(c, CURLOPT_DEBUGDATA, this);
    }
    return ok_status();
}

void Sender::Impl::bind(SendStats& stats) {
    stats_ = &stats;
    token_.bind(stats);
}

/// Any thread: hands the next targets and credentials to the sender thread.
void Sender::Impl::offer_reconfiguration(AzureConfig config, Credentials credentials) {
    const std::lock_guard lock(reconfigure_mutex_);
    pending_config_ = std::move(config);
    pending_credentials_ = std::move(credentials);
    reconfigure_pending_.store(true, std::memory_order_release);
}

/// The sender thread, with no request in flight: switch targets and credentials, and drop
/// the token (a new one is fetched from the new authority with the new credentials).
void Sender::Impl::apply_reconfiguration() {
    AzureConfig next;
    Credentials credentials;
    {
        const std::lock_guard lock(reconfigure_mutex_);
        next = std::move(pending_config_);
        credentials = std::move(pending_credentials_);
        reconfigure_pending_.store(false, std::memory_order_relaxed);
    }
    if (token_.in_flight()) {
        curl_multi_remove_handle(multi_, token_.easy());
        token_.abandon();
    }
    config_.target = std::move(next.target);
    config_.extra_targets = std::move(next.extra_targets);
    config_.authority_host = std::move(next.authority_host);
    config_.tenant_id = std::move(next.tenant_id);
    config_.client_id = std::move(next.client_id);
    config_.client_secret = std::move(next.client_secret);
    config_.client_secret_file = std::move(next.client_secret_file);
    config_.client_certificate_file = std::move(next.client_certificate_file);
    config_.client_key_file = std::move(next.client_key_file);
    config_.scope = std::move(next.scope);
    config_.audience = std::move(next.audience);
    config_.imds_endpoint = std::move(next.imds_endpoint);
    config_.identity_endpoint = std::move(next.identity_endpoint);
    build_targets();
    // TokenCache keeps a reference to config_ and cannot be assigned: a fresh one in place.
    std::destroy_at(&token_);
    std::construct_at(&token_, config_, std::move(credentials.client_secret), std::move(credentials.certificate));
    token_.bind(*stats_);
    publish_health();
    reconfigurations_.fetch_add(1, std::memory_order_relaxed);
    CEFD_LOG(info, "send: reconfigured: %zu target(s), first %s, dcr %s, stream %s; token dropped",
             targets_.size(), config_.target.endpoint.c_str(), config_.target.dcr_id.c_str(),
             config_.target.stream.c_str());
}

Result<Sender::Impl::Credentials> Sender::Impl::load_credentials(const AzureConfig& config) {
    Credentials credentials;
    credentials.client_secret = config.client_secret.reveal();
    if (config.auth == AzureConfig::Auth::client_secret && !config.client_secret_file.empty()) {
        std::ifstream in(config.client_secret_file, std::ios::binary);
        if (!in) return Error{Errc::config, "azure.client_secret_file: cannot read " + config.client_secret_file};
        std::string& secret = credentials.client_secret;
        std::getline(in, secret);
        while (!secret.empty() && (secret.back() == '\r' || secret.back() == ' ')) secret.pop_back();
        if (secret.empty()) return Error{Errc::config, "azure.client_secret_file: " + config.client_secret_file + " is empty"};
    }
    if (config.auth == AzureConfig::Auth::client_certificate) {
        auto loaded = ClientAssertion::load(config.client_certificate_file, config.client_key_file);
        if (!loaded) return loaded.error();
        credentials.certificate.emplace(std::move(loaded).value());
    }
    return credentials;
}

Status Sender::check_credentials(const AzureConfig& config) {
    auto credentials = Impl::load_credentials(config);
    if (!credentials) return credentials.error();
    return ok_status();
}

Result<std::unique_ptr<Sender>> Sender::create(const AzureConfig& config, BatchSource& source) {
    ConfigErrors errors;
    config.validate(errors);
    if (!errors.empty()) {
        std::string all;
        for (const auto& e : errors.list()) all += (all.empty() ? "" : "; ") + e;
        return Error{Errc::config, all};
    }
    curl_init_once();
    auto credentials = Impl::load_credentials(config);
    if (!credentials) return credentials.error();
    auto impl = std::make_unique<Impl>(config, source, std::move(credentials.value().client_secret),
                                       std::move(credentials.value().certificate));
    if (auto s = impl->init(); !s) return s.error();
    auto sender = std::unique_ptr<Sender>(new Sender(std::move(impl)));
    sender->impl_->bind(sender->stats_);
    return sender;
}

Sender::Sender(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Sender::~Sender() = default;

void Sender::run(std::stop_token stop) { impl_->run(std::move(stop)); }

Status Sender::reconfigure(const AzureConfig& config) {
    ConfigErrors errors;
    config.validate(errors);
    if (!errors.empty()) return Error{Errc::config, errors.list().front()};
    auto credentials = Impl::load_credentials(config);
    if (!credentials) return credentials.error();
    impl_->offer_reconfiguration(config, std::move(credentials).value());
    return ok_status();
}

std::uint64_t Sender::reconfigurations() const noexcept { return impl_->reconfigurations(); }

SendHealth Sender::health() const { return impl_->health(); }

void Sender::register_metrics(MetricsRegistry& registry) const {
    const struct {
        const char* name;
        const char* help;
        const Counter* counter;
    } counters[] = {
        {"send_requests_total", "Ingestion requests started.", &stats_.requests},
        {"send_delivered_batches_total", "Batches Azure accepted (204).", &stats_.delivered_batches},
        {"send_delivered_rows_total", "Rows in accepted batches.", &stats_.delivered_rows},
        {"send_delivered_bytes_total", "gzip bytes in accepted batches.", &stats_.delivered_bytes},
        {"send_retries_total", "Batch re-sends, any cause.", &stats_.retries},
        {"send_throttled_total", "429 answers.", &stats_.throttled},
        {"send_server_errors_total", "5xx answers.", &stats_.server_errors},
        {"send_network_errors_total", "Connect, TLS, timeout and reset errors.", &stats_.network_errors},
        {"send_token_refreshes_total", "Tokens obtained.", &stats_.token_refreshes},
        {"send_token_errors_total", "Failed token requests.", &stats_.token_errors},
        {"send_unauthorized_total", "401 answers.", &stats_.unauthorized},
        {"send_split_batches_total", "Batches split in two after a 413.", &stats_.split_batches},
        {"send_dead_lettered_batches_total", "Batches written to the dead-letter directory.", &stats_.dead_lettered_batches},
        {"send_dead_lettered_rows_total", "Rows in dead-lettered batches.", &stats_.dead_lettered_rows},
        {"send_dead_letter_errors_total", "Dead letters that could not be written (batch kept).", &stats_.dead_letter_errors},
        {"send_forbidden_retries_total", "403 answers retried inside azure.forbidden_retry_window_ms.", &stats_.forbidden_retries},
    };
    for (const auto& c : counters) registry.add(c.name, c.help, "", c.counter);
    registry.add("send_in_flight", "Ingestion requests in flight.", "", &stats_.in_flight, MetricsRegistry::Kind::gauge);
    registry.add("send_token_expiry_timestamp_seconds", "Unix time the current token expires; 0 when none.", "",
                 &stats_.token_expiry_unix_s, MetricsRegistry::Kind::gauge);
    registry.add_histogram("send_request_duration_seconds",
                           "Seconds from starting an ingestion request to its answer or error.", "",
                           &stats_.request_duration_s);
}

}  // namespace cefd
