// stages/send/send_answers.cpp: what the answer to an ingestion request means, and what the
// sender does with the batch: 2xx acknowledges it; 401 refreshes the token once and retries;
// 429 pauses the target for Retry-After and lets others take its share; 403 retries inside
// azure.forbidden_retry_window_ms, then dead-letters; 413 splits; 400/404 dead-letter; 5xx and
// network errors retry with jittered exponential backoff. Every outcome is counted (SendStats).
#include <algorithm>
#include <cinttypes>

#include "engine/clock.h"
#include "engine/log.h"
#include "stages/send/body.h"
#include "stages/send/dead_letter.h"
#include "stages/send/diagnose.h"
#include "stages/send/sender_impl.h"

namespace cefd {

void Sender::Impl::on_complete(Slot& slot, Work&& work, CURLcode rc) {
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
    if (status >= 200 && status < 300) {  // accepted (not proof of storage: see the reference, 1.4)
        // The spec says 204. Any other 2xx is still the server taking the batch: resending it
        // would only make duplicates, forever.
        if (status != 204 && status != 200)
            CEFD_LOG_EVERY(60, warn, "send: HTTP %ld from %s (request id %s), expected 204; counted as delivered",
                           status, target.config.endpoint.c_str(), id);
        bump(stats_->delivered_batches);
        bump(stats_->delivered_rows, batch.rows);
        bump(stats_->delivered_bytes, batch.body.size());
        return done(std::move(work));
    }
    switch (status) {
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

/// A response body as quoted in a log line: secret-free, short, one line.
std::string Sender::Impl::quoted(const Slot& slot, std::size_t max_bytes) const {
    const std::string& header = token_.header();
    const std::size_t at = header.find("Bearer ");
    return redact_secrets(slot.response, {at == std::string::npos ? std::string_view{} : std::string_view(header).substr(at + 7)},
                          max_bytes);
}

/// A 403 within forbidden_retry_window_ms of this batch's first 403 is retried.
bool Sender::Impl::forbidden_window_open(Work& work, std::int64_t now) const {
    if (config_.forbidden_retry_window_ms == 0) return false;
    if (work.forbidden_since_ns == 0) work.forbidden_since_ns = now;
    return now - work.forbidden_since_ns < static_cast<std::int64_t>(config_.forbidden_retry_window_ms) * ms;
}

std::int64_t Sender::Impl::backoff_ns(std::uint32_t attempts) {
    const std::int64_t initial = static_cast<std::int64_t>(config_.retry_initial_ms) * ms;
    const std::int64_t cap = static_cast<std::int64_t>(config_.retry_max_ms) * ms;
    const std::int64_t full = std::min(cap, initial << std::min(attempts, 20U));
    // Equal jitter: half fixed, half random, so retries after an outage do not arrive together.
    return full / 2 + static_cast<std::int64_t>(random_() % static_cast<std::uint64_t>(full / 2 + 1));
}

void Sender::Impl::retry(Work&& work, std::int64_t ready_ns) {
    bump(stats_->retries);
    ++work.item.attempts;
    work.ready_ns = ready_ns;
    waiting_.push_back(std::move(work));
}

void Sender::Impl::split(Work&& work, Slot& slot, std::int64_t now) {
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

void Sender::Impl::dead_letter(Work&& work, Slot& slot, long status) {
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
void Sender::Impl::done(Work&& work) {
    if (work.part) {
        auto it = splits_.find(work.item.id);
        CEFD_ASSERT(it != splits_.end());
        if (--it->second.outstanding > 0) return;
        splits_.erase(it);
    }
    source_.ack(work.item.id);
}

}  // namespace cefd
