// stages/send/send.cpp: the Sender. One thread, one libcurl multi handle, max_in_flight easy
// handles (one per slot, reused so connections stay open). The loop:
//
//   token due?  -> start a fetch on the same multi handle (TokenCache, token.h)
//   free slot?  -> start the earliest due retry, else take a new batch from the source
//   curl_multi_perform / curl_multi_poll, then handle every finished transfer
//
// The sender holds at most max_in_flight batches (in slots or waiting for a retry), so memory
// is bounded and a long outage leaves everything else in the spool. 413 splits a batch into
// two parts that share the spool id; the original is acknowledged when both are done.
#include "stages/send/send.h"

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <fstream>
#include <optional>
#include <random>
#include <unordered_map>

#include "engine/clock.h"
#include "engine/log.h"
#include "stages/send/assertion.h"
#include "stages/send/body.h"
#include "stages/send/curl_handle.h"
#include "stages/send/dead_letter.h"
#include "stages/send/diagnose.h"
#include "stages/send/health.h"
#include "stages/send/targets.h"
#include "stages/send/token.h"

namespace cefd {

namespace {

constexpr std::int64_t ms = 1'000'000;

/// A batch, or a part of a split one, that the sender holds.
struct Work {
    SpooledBatch item;          // item.id is the spool id (shared by the parts of a split)
    bool part = false;          // a half of a split batch
    bool retried_401 = false;   // the one refresh-and-retry on 401 was used
    std::int64_t ready_ns = 0;  // monotonic time the next attempt may start
    std::int64_t forbidden_since_ns = 0;  // monotonic time of its first 403; 0 = none yet
};

struct Slot {
    CurlEasy easy;
    CurlHeaders headers;
    std::string response;
    std::optional<Work> work;
    std::size_t target = 0;
    std::uint64_t token_generation = 0;
    std::int64_t started_ns = 0;  // monotonic time the request went to libcurl
    char request_id[37]{};
};

}  // namespace

class Sender::Impl {
public:
    Impl(const AzureConfig& config, BatchSource& source, std::string client_secret,
         std::optional<ClientAssertion> certificate)
        : config_(config), source_(source), token_(config_, std::move(client_secret), std::move(certificate)),
          slots_(config.max_in_flight), random_(std::random_device{}()) {
        targets_.push_back(make_target(config.target, config.max_in_flight));
        for (const auto& t : config.extra_targets) targets_.push_back(make_target(t, config.max_in_flight));
    }
    ~Impl() {
        for (auto& slot : slots_)
            if (slot.work) curl_multi_remove_handle(multi_, slot.easy.get());
        if (token_.in_flight()) curl_multi_remove_handle(multi_, token_.easy());
    }

    Status init() {
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

    void bind(SendStats& stats) {
        stats_ = &stats;
        token_.bind(stats);
    }

    void run(std::stop_token stop) {
        std::int64_t drain_deadline = 0;
        CEFD_LOG(info, "send: delivering to %zu target(s), up to %u requests in flight", targets_.size(),
                 config_.max_in_flight);
        while (true) {
            const std::int64_t now = monotonic_ns();
            if (stop.stop_requested()) {
                if (drain_deadline == 0) {
                    drain_deadline = now + static_cast<std::int64_t>(config_.drain_timeout_ms) * ms;
                    CEFD_LOG(info, "send: draining (%zu batches pending, up to %u ms)", source_.pending(),
                             config_.drain_timeout_ms);
                }
                if (busy_slots() == 0 && waiting_.empty() && source_.pending() == 0) break;
                if (now >= drain_deadline) {
                    CEFD_LOG(warn, "send: drain timeout; %zu batches stay in the spool for the next start",
                             source_.pending());
                    break;
                }
            }
            // A reconfigure() waits for a batch boundary: nothing new starts until it is applied.
            const bool reconfiguring = reconfigure_pending_.load(std::memory_order_acquire);
            if (reconfiguring && busy_slots() == 0) apply_reconfiguration();
            refresh_token_if_due(now);
            if (!reconfigure_pending_.load(std::memory_order_relaxed)) start_requests(now, drain_deadline != 0);
            int running = 0;
            curl_multi_perform(multi_, &running);
            handle_completions();
            wait_for_work();
        }
        give_back_everything();
    }

    /// The credentials a TokenCache needs, loaded from a config (files read here).
    struct Credentials {
        std::string client_secret;
        std::optional<ClientAssertion> certificate;
    };
    static Result<Credentials> load_credentials(const AzureConfig& config);

    /// Any thread: hands the next targets and credentials to the sender thread.
    void offer_reconfiguration(AzureConfig config, Credentials credentials) {
        const std::lock_guard lock(reconfigure_mutex_);
        pending_config_ = std::move(config);
        pending_credentials_ = std::move(credentials);
        reconfigure_pending_.store(true, std::memory_order_release);
    }
    [[nodiscard]] std::uint64_t reconfigurations() const noexcept {
        return reconfigurations_.load(std::memory_order_relaxed);
    }

private:
    /// The sender thread, with no request in flight: switch targets and credentials, and drop
    /// the token (a new one is fetched from the new authority with the new credentials).
    void apply_reconfiguration() {
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
        targets_.clear();
        targets_.push_back(make_target(config_.target, config_.max_in_flight));
        for (const auto& t : config_.extra_targets) targets_.push_back(make_target(t, config_.max_in_flight));
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

    std::size_t busy_slots() const {
        return static_cast<std::size_t>(std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.work.has_value(); }));
    }

    // ---- token ---------------------------------------------------------------------------

    [[nodiscard]] bool token_usable(std::int64_t now) const { return token_.usable(now); }

    /// Starts a token fetch on the multi handle when one is due. Requests keep flowing with the
    /// current token while it runs; only a missing or expired token holds new requests back.
    void refresh_token_if_due(std::int64_t now) {
        const std::uint32_t failures = token_.failures_in_row();
        if (CURL* easy = token_.start_if_due(now)) curl_multi_add_handle(multi_, easy);
        if (token_.failures_in_row() != failures) publish_health();  // it could not be prepared
    }

public:
    [[nodiscard]] SendHealth health() const { return health_.snapshot(); }

private:
    void publish_health() { health_.publish(token_, monotonic_ns()); }

    /// A response body as quoted in a log line: secret-free, short, one line.
    std::string quoted(const Slot& slot, std::size_t max_bytes = 300) const {
        const std::string& header = token_.header();
        const std::size_t at = header.find("Bearer ");
        return redact_secrets(slot.response, {at == std::string::npos ? std::string_view{} : std::string_view(header).substr(at + 7)},
                              max_bytes);
    }

    // ---- starting requests ---------------------------------------------------------------

    void start_requests(std::int64_t now, bool draining) {
        if (!token_usable(now)) return;
        for (auto& slot : slots_) {
            if (slot.work) continue;
            // Every target throttled or at its own cap: leave work where it is (spool or waiting_).
            if (!any_can_take(targets_, now)) return;
            std::optional<Work> work = take_due_retry(now);
            if (!work && waiting_.size() + busy_slots() < config_.max_in_flight) {
                // Wait briefly for a batch only when there is nothing else to do.
                const bool idle = busy_slots() == 0 && waiting_.empty();
                auto next = source_.next(idle && !draining ? 50 * ms : 0);
                if (next) work = Work{.item = std::move(*next), .ready_ns = now};
            }
            if (!work) return;
            const std::size_t target = pick_target(targets_, now);
            CEFD_ASSERT(target < targets_.size());  // any_target_can_take said one can
            start(slot, std::move(*work), target);
        }
    }

    std::optional<Work> take_due_retry(std::int64_t now) {
        auto due = waiting_.end();
        for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
            if (it->ready_ns <= now && (due == waiting_.end() || it->ready_ns < due->ready_ns)) due = it;
        if (due == waiting_.end()) return std::nullopt;
        Work work = std::move(*due);
        waiting_.erase(due);
        return work;
    }

    void new_request_id(char* out) {
        // UUID v4: 122 random bits, version 4, variant 10.
        std::uint64_t hi = random_();
        std::uint64_t lo = random_();
        hi = (hi & ~0xF000ULL) | 0x4000ULL;
        lo = (lo & ~(0xC000ULL << 48)) | (0x8000ULL << 48);
        std::snprintf(out, 37, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                      static_cast<unsigned>((hi >> 16) & 0xFFFF), static_cast<unsigned>(hi & 0xFFFF),
                      static_cast<unsigned>(lo >> 48),
                      static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFULL));
    }

    void start(Slot& slot, Work&& work, std::size_t target) {
        slot.work.emplace(std::move(work));
        slot.target = target;
        ++targets_[target].in_flight;
        slot.token_generation = token_.generation();
        slot.response.clear();
        new_request_id(slot.request_id);
        const SealedBatch& batch = slot.work->item.batch;
        const Target& t = targets_[target];

        slot.headers.reset();
        slot.headers.append("Content-Type: application/json");
        slot.headers.append("Content-Encoding: gzip");
        slot.headers.append("Accept: application/json");
        slot.headers.append(std::string("x-ms-client-request-id: ") + slot.request_id);
        slot.headers.append("Expect:");  // no 100-continue round trip
        if (config_.auth != AzureConfig::Auth::none) slot.headers.append(token_.header());

        CURL* c = slot.easy.get();
        curl_easy_setopt(c, CURLOPT_URL,
                         (batch.table == Table::syslog ? t.url_syslog : t.url_common_security_log).c_str());
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, slot.headers.get());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(batch.body.size()));
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, batch.body.data());
        slot.started_ns = monotonic_ns();
        curl_multi_add_handle(multi_, c);
        bump(stats_->requests);
        stats_->in_flight.store(busy_slots(), std::memory_order_relaxed);
    }

    static int on_curl_debug(CURL* easy, curl_infotype type, char* data, size_t size, void* user) noexcept {
        constexpr std::string_view resend = "Connection died, retrying";
        if (type != CURLINFO_TEXT || size < resend.size() || std::string_view(data, resend.size()) != resend) return 0;
        auto* self = static_cast<Impl*>(user);
        Slot* slot = nullptr;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &slot);
        bump(self->stats_->retries);
        bump(self->stats_->network_errors);
        CEFD_LOG_EVERY(5, warn, "send: connection closed before an answer (request id %s); libcurl resends it",
                       slot != nullptr ? slot->request_id : "?");
        return 0;
    }

    // ---- completions ---------------------------------------------------------------------

    void handle_completions() {
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
            if (msg->msg != CURLMSG_DONE) continue;
            if (msg->easy_handle == token_.easy()) {
                const CURLcode rc = msg->data.result;
                curl_multi_remove_handle(multi_, msg->easy_handle);
                if (token_.on_transfer_done(rc)) curl_multi_add_handle(multi_, token_.easy());
                publish_health();
                continue;
            }
            Slot* slot = nullptr;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &slot);
            const CURLcode rc = msg->data.result;
            curl_multi_remove_handle(multi_, msg->easy_handle);
            Work work = std::move(*slot->work);
            slot->work.reset();
            --targets_[slot->target].in_flight;
            on_complete(*slot, std::move(work), rc);
        }
        stats_->in_flight.store(busy_slots(), std::memory_order_relaxed);
    }

    void on_complete(Slot& slot, Work&& work, CURLcode rc) {
        const std::int64_t now = monotonic_ns();
        // Every answer and every error: a slow 5xx or a timeout is latency too.
        stats_->request_duration_s.observe(static_cast<double>(now - slot.started_ns) / 1e9);
        const Target& target = targets_[slot.target];
        const char* id = slot.request_id;
        long status = 0;
        if (rc == CURLE_OK) curl_easy_getinfo(slot.easy.get(), CURLINFO_RESPONSE_CODE, &status);
        health_.note_request(target.config.endpoint, rc == CURLE_OK ? nullptr : curl_easy_strerror(rc), status);
        publish_health();
        if (rc != CURLE_OK) {
            // Connect refused, TLS failure, timeout, reset. The server may have stored the
            // batch before the connection broke; resending it then makes a duplicate, which
            // at-least-once accepts (reference: "Azure does not de-duplicate").
            bump(stats_->network_errors);
            CEFD_LOG_EVERY(5, warn, "send: %s: %s (request id %s); retrying", target.config.endpoint.c_str(),
                           curl_easy_strerror(rc), id);
            return retry(std::move(work), now + backoff_ns(work.item.attempts));
        }
        const SealedBatch& batch = work.item.batch;
        switch (status) {
            case 200:
            case 204:  // accepted (not proof of storage: see the reference, 1.4)
                bump(stats_->delivered_batches);
                bump(stats_->delivered_rows, batch.rows);
                bump(stats_->delivered_bytes, batch.body.size());
                return done(std::move(work));
            case 401:  // token missing, expired or for the wrong audience
                bump(stats_->unauthorized);
                if (!work.retried_401) {
                    work.retried_401 = true;
                    // Refresh once per token, however many requests carried it. The server
                    // refused it, so no new request carries it while the refresh runs.
                    token_.invalidate(slot.token_generation);
                    CEFD_LOG_EVERY(10, warn, "send: 401 from %s (request id %s); refreshing the token and retrying",
                                   target.config.endpoint.c_str(), id);
                    return retry(std::move(work), now);
                }
                CEFD_LOG_EVERY(10, error, "send: 401 again with a fresh token (request id %s): %s. Check that the "
                               "token is for the cloud of %s (azure.%s = %s)", id, quoted(slot).c_str(),
                               target.config.endpoint.c_str(),
                               config_.auth == AzureConfig::Auth::managed_identity || config_.auth == AzureConfig::Auth::arc
                                   ? "audience" : "scope",
                               config_.auth == AzureConfig::Auth::managed_identity || config_.auth == AzureConfig::Auth::arc
                                   ? config_.audience.c_str() : config_.scope.c_str());
                return retry(std::move(work), now + backoff_ns(work.item.attempts));
            case 413:  // over the size limit: never resend unchanged; split
                return split(std::move(work), slot, now);
            case 429: {  // throttled: wait Retry-After, back this target off, others take its share
                bump(stats_->throttled);
                curl_off_t retry_after_s = 0;
                curl_easy_getinfo(slot.easy.get(), CURLINFO_RETRY_AFTER, &retry_after_s);
                const std::int64_t delay = retry_after_s > 0 ? std::min<std::int64_t>(retry_after_s, 3600) * 1'000 * ms
                                                             : backoff_ns(work.item.attempts);
                targets_[slot.target].paused_until_ns = now + delay;
                // Another target that is not paused takes it (now, or when it has room); with
                // none, the batch waits for the Retry-After too.
                const bool elsewhere = std::any_of(targets_.begin(), targets_.end(),
                                                   [now](const Target& t) { return t.paused_until_ns <= now; });
                CEFD_LOG_EVERY(5, warn, "send: 429 from %s %s (request id %s); pausing it %" PRId64 " ms%s",
                               target.config.endpoint.c_str(), target.config.dcr_id.c_str(), id, delay / ms,
                               elsewhere ? ", the other targets take its share" : "");
                return retry(std::move(work), elsewhere ? now : now + delay);
            }
            case 403:  // the identity lacks "Monitoring Metrics Publisher" on the DCR
                if (forbidden_window_open(work, now)) {
                    bump(stats_->forbidden_retries);
                    const std::int64_t delay = backoff_ns(work.item.attempts);
                    CEFD_LOG_EVERY(30, warn, "send: 403 from %s (request id %s): %s. Retrying for up to %u s "
                                   "(azure.forbidden_retry_window_ms) before dead-lettering",
                                   target.config.endpoint.c_str(), id, explain_ingestion_status(403),
                                   config_.forbidden_retry_window_ms / 1000);
                    return retry(std::move(work), now + delay);
                }
                return dead_letter(std::move(work), slot, status);
            case 400:  // the body or the call is malformed: a bug or a DCR/stream schema mismatch
            case 404:  // unknown DCR id or stream, or a malformed URL
                return dead_letter(std::move(work), slot, status);
            default:
                if (status >= 500) {  // transient on Azure's side
                    bump(stats_->server_errors);
                    CEFD_LOG_EVERY(5, warn, "send: %ld from %s (request id %s); retrying", status,
                                   target.config.endpoint.c_str(), id);
                } else {  // unexpected: log the raw answer and keep the batch
                    CEFD_LOG_EVERY(5, error, "send: unexpected HTTP %ld from %s (request id %s): %s; retrying", status,
                                   target.config.endpoint.c_str(), id, quoted(slot).c_str());
                }
                return retry(std::move(work), now + backoff_ns(work.item.attempts));
        }
    }

    /// A 403 within forbidden_retry_window_ms of this batch's first 403 is retried.
    [[nodiscard]] bool forbidden_window_open(Work& work, std::int64_t now) const {
        if (config_.forbidden_retry_window_ms == 0) return false;
        if (work.forbidden_since_ns == 0) work.forbidden_since_ns = now;
        return now - work.forbidden_since_ns < static_cast<std::int64_t>(config_.forbidden_retry_window_ms) * ms;
    }

    std::int64_t backoff_ns(std::uint32_t attempts) {
        const std::int64_t initial = static_cast<std::int64_t>(config_.retry_initial_ms) * ms;
        const std::int64_t cap = static_cast<std::int64_t>(config_.retry_max_ms) * ms;
        const std::int64_t full = std::min(cap, initial << std::min(attempts, 20U));
        // Equal jitter: half fixed, half random, so retries after an outage do not arrive together.
        return full / 2 + static_cast<std::int64_t>(random_() % static_cast<std::uint64_t>(full / 2 + 1));
    }

    void retry(Work&& work, std::int64_t ready_ns) {
        bump(stats_->retries);
        ++work.item.attempts;
        work.ready_ns = ready_ns;
        waiting_.push_back(std::move(work));
    }

    void split(Work&& work, Slot& slot, std::int64_t now) {
        auto halves = work.item.batch.rows > 1 ? split_batch(work.item.batch) : std::nullopt;
        if (!halves) {
            CEFD_LOG_EVERY(10, error, "send: 413 for a batch that cannot be split (%u rows, %u JSON bytes)",
                           work.item.batch.rows, work.item.batch.json_bytes);
            return dead_letter(std::move(work), slot, 413);
        }
        bump(stats_->split_batches);
        CEFD_LOG_EVERY(10, warn, "send: 413 (request id %s): split %u rows into %u + %u; is batch.max_bytes above "
                       "the service limit?", slot.request_id, work.item.batch.rows, halves->first.rows,
                       halves->second.rows);
        auto& split = splits_[work.item.id];
        if (!work.part) split.original = std::move(work.item);
        ++split.outstanding;  // one part became two
        for (SealedBatch* half : {&halves->first, &halves->second}) {
            Work part{.item = SpooledBatch{.id = split.original.id, .batch = std::move(*half)}, .part = true,
                      .ready_ns = now};
            waiting_.push_back(std::move(part));
        }
    }

    void dead_letter(Work&& work, Slot& slot, long status) {
        const Target& target = targets_[slot.target];
        const SealedBatch& batch = work.item.batch;
        DeadLetter letter{.status = status, .request_id = slot.request_id, .endpoint = target.config.endpoint,
                          .dcr_id = target.config.dcr_id,
                          .stream = batch.table == Table::syslog ? target.config.syslog_stream : target.config.stream,
                          .response = quoted(slot, 4096)};
        const Status written = write_dead_letter(config_.dead_letter_dir, batch, letter);
        const char* hint = explain_ingestion_status(status);
        if (!written) {
            // Keep the batch rather than lose it: the operator sees this line and the counter.
            bump(stats_->dead_letter_errors);
            CEFD_LOG_EVERY(10, error, "send: cannot write dead letter to %s (%s); keeping the batch in the spool",
                           config_.dead_letter_dir.c_str(), written.error().describe().c_str());
            return retry(std::move(work), monotonic_ns() + backoff_ns(work.item.attempts));
        }
        bump(stats_->dead_lettered_batches);
        bump(stats_->dead_lettered_rows, batch.rows);
        CEFD_LOG_EVERY(10, error, "send: %ld from %s (request id %s): %s. Dead-lettered %u rows to %s. Fix: %s",
                       status, target.config.endpoint.c_str(), slot.request_id,
                       quoted(slot).c_str(), batch.rows, config_.dead_letter_dir.c_str(), hint);
        done(std::move(work));
    }

    /// Delivered or dead-lettered: acknowledge, or count down the parts of a split batch.
    void done(Work&& work) {
        if (work.part) {
            auto it = splits_.find(work.item.id);
            CEFD_ASSERT(it != splits_.end());
            if (--it->second.outstanding > 0) return;
            splits_.erase(it);
        }
        source_.ack(work.item.id);
    }

    // ---- waiting and shutdown ------------------------------------------------------------

    void wait_for_work() {
        const std::int64_t now = monotonic_ns();
        std::int64_t timeout = 100 * ms;
        const bool can_start = token_usable(now) && any_can_take(targets_, now);
        if (can_start) {
            for (const auto& w : waiting_) timeout = std::min(timeout, std::max<std::int64_t>(0, w.ready_ns - now));
        } else if (token_usable(now)) {
            // Every target paused (429) or full: the next chance is an unpause or a completion,
            // and curl_multi_poll wakes on the completion.
            timeout = std::min(timeout, std::max<std::int64_t>(0, earliest_unpause(targets_, now) - now));
        }
        if (!token_usable(now) && !token_.in_flight())
            timeout = std::min(timeout, std::max<std::int64_t>(0, token_.retry_at_ns() - now));
        if (busy_slots() == 0 && waiting_.empty() && can_start && !token_.in_flight()) return;  // next() waits
        if (can_start && busy_slots() < slots_.size() && waiting_.size() + busy_slots() < config_.max_in_flight)
            timeout = std::min(timeout, 10 * ms);  // look at the source again soon
        // With no transfers this just sleeps for the timeout.
        curl_multi_poll(multi_, nullptr, 0, static_cast<int>(std::max<std::int64_t>(timeout / ms, 1)), nullptr);
    }

    void give_back_everything() {
        std::size_t released = 0;
        for (auto& slot : slots_) {
            if (!slot.work) continue;
            curl_multi_remove_handle(multi_, slot.easy.get());
            --targets_[slot.target].in_flight;
            waiting_.push_back(std::move(*slot.work));
            slot.work.reset();
        }
        if (token_.in_flight()) {
            curl_multi_remove_handle(multi_, token_.easy());
            token_.abandon();
        }
        for (auto& work : waiting_) {
            if (work.part) continue;  // released once, as the original, below
            source_.release(std::move(work.item));
            ++released;
        }
        waiting_.clear();
        for (auto& [id, split] : splits_) {
            // Parts already delivered will be sent again with it: a duplicate, not a loss.
            source_.release(std::move(split.original));
            ++released;
        }
        splits_.clear();
        stats_->in_flight.store(0, std::memory_order_relaxed);
        if (released > 0) CEFD_LOG(info, "send: %zu undelivered batches left in the spool", released);
    }

    struct Split {
        SpooledBatch original;
        std::uint32_t outstanding = 1;
    };

    AzureConfig config_;  // a copy: the Sender outlives any config object; targets and credentials change on reconfigure
    BatchSource& source_;
    TokenCache token_;
    SendStats* stats_ = nullptr;
    CurlMulti multi_handle_;  // before the slots: their easy handles go first
    CURLM* multi_ = nullptr;  // multi_handle_.get()
    std::vector<Target> targets_;
    std::vector<Slot> slots_;
    std::deque<Work> waiting_;
    std::unordered_map<std::uint64_t, Split> splits_;
    std::mt19937_64 random_;
    HealthBoard health_{config_.auth != AzureConfig::Auth::none};  // health() reads it from any thread
    std::mutex reconfigure_mutex_;  // guards pending_*: reconfigure() runs on another thread
    AzureConfig pending_config_;
    Credentials pending_credentials_;
    std::atomic<bool> reconfigure_pending_{false};
    std::atomic<std::uint64_t> reconfigurations_{0};
};

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
