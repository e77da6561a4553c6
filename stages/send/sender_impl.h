// stages/send/sender_impl.h: Sender::Impl, the state of the one sender thread, private to
// stages/send. Its member functions live in three files, one concern each:
//
//   send.cpp          the loop: take a batch or a due retry, start requests, reap completions, wait
//   send_answers.cpp  what each answer means: deliver, refresh the token, retry, split, dead-letter
//   send_setup.cpp    construction, libcurl set-up, live reconfiguration, the Sender facade, metrics
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/clock.h"
#include "stages/send/assertion.h"
#include "stages/send/curl_handle.h"
#include "stages/send/health.h"
#include "stages/send/send.h"
#include "stages/send/targets.h"
#include "stages/send/token.h"

namespace cefd {

class Sender::Impl {
public:
    /// The credentials a TokenCache needs, loaded from a config (files read here).
    struct Credentials {
        std::string client_secret;
        std::optional<ClientAssertion> certificate;
    };
    static Result<Credentials> load_credentials(const AzureConfig& config);

    Impl(const AzureConfig& config, BatchSource& source, std::string client_secret,
         std::optional<ClientAssertion> certificate);
    ~Impl();
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    Status init();
    void bind(SendStats& stats);
    void run(std::stop_token stop);

    /// Any thread: hands the next targets and credentials to the sender thread.
    void offer_reconfiguration(AzureConfig config, Credentials credentials);
    [[nodiscard]] std::uint64_t reconfigurations() const noexcept {
        return reconfigurations_.load(std::memory_order_relaxed);
    }
    [[nodiscard]] SendHealth health() const { return health_.snapshot(); }

private:
    static constexpr std::int64_t ms = 1'000'000;

    /// A batch, or a part of a split one, that the sender holds.
    struct Work {
        SpooledBatch item;          // item.id is the spool id (shared by the parts of a split)
        bool part = false;          // a half of a split batch
        bool retried_401 = false;   // the one refresh-and-retry on 401 was used
        std::int64_t ready_ns = 0;  // monotonic time the next attempt may start
        std::int64_t forbidden_since_ns = 0;  // monotonic time of its first 403; 0 = none yet
    };

    /// One easy handle, reused so its connection stays open, and the request it carries.
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

    /// A batch split after a 413: acknowledged when its last part is done.
    struct Split {
        SpooledBatch original;
        std::uint32_t outstanding = 1;
    };

    // send_setup.cpp
    void build_targets();
    void apply_reconfiguration();

    // send.cpp: the loop
    void refresh_token_if_due(std::int64_t now);
    void start_requests(std::int64_t now, bool draining);
    auto take_due_retry(std::int64_t now) -> std::optional<Work>;
    void new_request_id(char* out);
    void start(Slot& slot, Work&& work, std::size_t target);
    static int on_curl_debug(CURL* easy, curl_infotype type, char* data, size_t size, void* user) noexcept;
    void handle_completions();
    void wait_for_work();
    void give_back_everything();

    // send_answers.cpp: what an answer means
    void on_complete(Slot& slot, Work&& work, CURLcode rc);
    std::string quoted(const Slot& slot, std::size_t max_bytes = 300) const;
    [[nodiscard]] bool forbidden_window_open(Work& work, std::int64_t now) const;
    std::int64_t backoff_ns(std::uint32_t attempts);
    void retry(Work&& work, std::int64_t ready_ns);
    void split(Work&& work, Slot& slot, std::int64_t now);
    void dead_letter(Work&& work, Slot& slot, long status);
    void done(Work&& work);

    [[nodiscard]] std::size_t busy_slots() const {
        return static_cast<std::size_t>(
            std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.work.has_value(); }));
    }
    [[nodiscard]] bool token_usable(std::int64_t now) const { return token_.usable(now); }
    void publish_health() { health_.publish(token_, monotonic_ns()); }

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

}  // namespace cefd
