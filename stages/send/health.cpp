// stages/send/health.cpp: HealthBoard (see health.h).
#include "stages/send/health.h"

#include <cinttypes>

#include "engine/clock.h"
#include "engine/log.h"
#include "stages/send/token.h"

namespace cefd {

void HealthBoard::note_request(const std::string& endpoint, const char* curl_error, long status) {
    const bool ok = curl_error == nullptr && status >= 200 && status < 300;
    if (ok) {
        if (request_failures_in_row_ > 0)
            CEFD_LOG(info, "send: %s accepts requests again after %" PRIu64 " failures", endpoint.c_str(),
                     request_failures_in_row_);
        request_failures_in_row_ = 0;
        request_error_.clear();
        last_success_unix_s_ = wall_clock_ns() / 1'000'000'000;
    } else {
        ++request_failures_in_row_;
        request_error_ = curl_error != nullptr ? std::string("ingest: ") + curl_error + " (" + endpoint + ")"
                                               : "ingest: HTTP " + std::to_string(status) + " from " + endpoint + ": " +
                                                     explain_ingestion_status(status);
        // The per-cause lines say more, once per few seconds each; this one keeps saying, with
        // the count, that deliveries fail, for as long as they do.
        std::uint64_t since_last = 0;
        if (request_log_.record(monotonic_ns(), since_last))
            CEFD_LOG(error, "send: requests failing (%" PRIu64 " since the last line, %" PRIu64 " in a row): %s",
                     since_last, request_failures_in_row_, request_error_.c_str());
    }
    last_send_ok_ = ok;
}

void HealthBoard::publish(const TokenCache& token, std::int64_t now_ns) {
    std::lock_guard lock(mutex_);
    published_.token_valid = token.usable(now_ns);
    published_.token_expires_unix_s = token.expires_unix_s(now_ns);
    published_.last_send_ok = last_send_ok_;
    published_.last_success_unix_s = last_success_unix_s_;
    published_.consecutive_failures = request_failures_in_row_ + token.failures_in_row();
    published_.last_error = !request_error_.empty() ? request_error_ : token.last_error();
}

SendHealth HealthBoard::snapshot() const {
    SendHealth h;
    {
        std::lock_guard lock(mutex_);
        h = published_;
    }
    // Judged now, not when the sender last published: an idle sender's token runs out
    // without an event.
    if (!needs_token_) {
        h.token_valid = true;
    } else if (h.token_expires_unix_s <= wall_clock_ns() / 1'000'000'000) {
        h.token_valid = false;
        h.token_expires_unix_s = 0;
    }
    return h;
}

}  // namespace cefd
