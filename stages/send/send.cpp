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
//
// This file holds the loop; what each answer means is in send_answers.cpp, set-up and
// reconfiguration in send_setup.cpp (the state: sender_impl.h).
#include <algorithm>
#include <cstdio>

#include "engine/clock.h"
#include "engine/log.h"
#include "stages/send/sender_impl.h"

namespace cefd {

void Sender::Impl::run(std::stop_token stop) {
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

/// Starts a token fetch on the multi handle when one is due. Requests keep flowing with the
/// current token while it runs; only a missing or expired token holds new requests back.
void Sender::Impl::refresh_token_if_due(std::int64_t now) {
    const std::uint32_t failures = token_.failures_in_row();
    if (CURL* easy = token_.start_if_due(now)) curl_multi_add_handle(multi_, easy);
    if (token_.failures_in_row() != failures) publish_health();  // it could not be prepared
}

void Sender::Impl::start_requests(std::int64_t now, bool draining) {
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

auto Sender::Impl::take_due_retry(std::int64_t now) -> std::optional<Work> {
    auto due = waiting_.end();
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
        if (it->ready_ns <= now && (due == waiting_.end() || it->ready_ns < due->ready_ns)) due = it;
    if (due == waiting_.end()) return std::nullopt;
    Work work = std::move(*due);
    waiting_.erase(due);
    return work;
}

void Sender::Impl::new_request_id(char* out) {
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

void Sender::Impl::start(Slot& slot, Work&& work, std::size_t target) {
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

int Sender::Impl::on_curl_debug(CURL* easy, curl_infotype type, char* data, size_t size, void* user) noexcept {
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

void Sender::Impl::handle_completions() {
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

void Sender::Impl::wait_for_work() {
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

void Sender::Impl::give_back_everything() {
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

}  // namespace cefd
