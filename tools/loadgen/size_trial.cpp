// tools/loadgen/size_trial.cpp: running and judging trials, and the ramp/bisect search
// (size_trial.h).
#include "tools/loadgen/size_trial.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "tools/loadgen/sender.h"
#include "tools/loadgen/size_probe.h"
#include "tools/loadgen/verify.h"

namespace cefd::loadgen::sizing {
namespace {

class Sizer {
public:
    Sizer(SizeOptions options, std::vector<std::string> lines, int pid)
        : options_(std::move(options)), lines_(std::move(lines)), pid_(pid),
          tracker_(options_.load.verify_path, accept_path()) {
        tracker_.poll();  // skip rows already in the file
    }

    Trial run_trial(double rate, double hold_s, const char* phase) {
        Trial trial{.target_eps = rate, .hold_s = hold_s, .phase = phase};
        LoadgenOptions load = options_.load;
        load.rate_eps = rate;
        load.duration_s = hold_s;
        load.count = 0;
        load.run_id = run_prefix_ + std::to_string(++trial_number_);
        // Room for every event this trial can send (cut to what was sent once it is over).
        tracker_.begin_run(load.run_id, static_cast<std::uint64_t>(rate * hold_s * 1.1) + 4'096);
        const Scrape before = scrape(options_.metrics_url);
        const double cpu_before = process_cpu_s(pid_);

        std::atomic<std::uint64_t> progress{0};
        SendReport sent;
        Scrape third_way;
        {
            std::jthread sender([&] { sent = send_events(load, lines_, progress); });
            // Backlog a third of the way in and at the end of the send: growing = not keeping up.
            const auto start = std::chrono::steady_clock::now();
            const auto third = start + std::chrono::duration<double>(hold_s / 3);
            while (std::chrono::steady_clock::now() < third) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                tracker_.poll();
            }
            third_way = scrape(options_.metrics_url);
            trial.backlog_start = backlog(third_way);
        }  // joins the sender
        const Scrape end_of_send = scrape(options_.metrics_url);
        trial.backlog_end = backlog(end_of_send);
        trial.sent = sent.attempted;
        trial.offered_eps = sent.elapsed_s > 0 ? static_cast<double>(sent.sent) / sent.elapsed_s : 0;
        trial.loadgen_cpu_us_per_event = sent.sent > 0 ? sent.cpu_s * 1e6 / static_cast<double>(sent.sent) : 0;

        // Wait for the rows: until all arrived, or nothing new for a while, or --drain-s.
        tracker_.set_expected(sent.attempted);
        const auto drain_deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options_.drain_s);
        auto last_growth = std::chrono::steady_clock::now();
        const auto idle_limit = std::chrono::duration<double>(std::min(options_.drain_s, options_.max_p99_ms / 1000 + 2));
        while (!tracker_.complete() && std::chrono::steady_clock::now() < drain_deadline) {
            if (tracker_.poll()) last_growth = std::chrono::steady_clock::now();
            else if (std::chrono::steady_clock::now() - last_growth > idle_limit) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the accept line follows the rows
        tracker_.poll();
        const Scrape after = scrape(options_.metrics_url);
        const double cpu_after = process_cpu_s(pid_);
        // Any scrape unanswered, or the process gone: nothing in this trial is about capacity.
        trial.target_unreachable = !before.ok || !third_way.ok || !end_of_send.ok || !after.ok || cpu_before < 0 ||
                                   cpu_after < 0;

        const VerifyReport report = tracker_.report();
        trial.delivered = report.delivered;
        trial.lost = report.lost;
        trial.duplicated = report.duplicated;
        trial.delivered_eps = sent.elapsed_s > 0 ? static_cast<double>(report.delivered) / sent.elapsed_s : 0;
        trial.loss_pct = trial.sent > 0 ? 100.0 * static_cast<double>(report.lost) / static_cast<double>(trial.sent) : 0;
        trial.p50_ms = report.latency_p50_ms;
        trial.p99_ms = report.latency_p99_ms;
        trial.max_ms = report.latency_max_ms;
        const double rows = after.delivered_rows - before.delivered_rows;
        trial.cefd_cpu_us_per_event = rows > 0 && cpu_before >= 0 ? (cpu_after - cpu_before) * 1e6 / rows : 0;
        const double batches = after.delivered_batches - before.delivered_batches;
        trial.rows_per_request = batches > 0 ? rows / batches : 0;
        trial.json_bytes_per_row = tracker_.run_row_bytes_mean();
        trial.peak_rss_mib = peak_rss_mib(pid_);

        const GeneratorCheck generator = check_generator(sent);
        trial.requested_eps = generator.requested_eps;
        trial.sender_cpu_share = generator.sender_cpu_share;
        trial.sender_runnable_share = generator.sender_runnable_share;
        trial.generator_limited = generator.limited;
        trial.target_backpressure = generator.target_backpressure;
        trial.generator_why = generator.why;
        trial.why = judge(trial, report.latency_samples, options_.max_p99_ms);
        trial.held = trial.why.empty();
        std::fprintf(stderr,
                     "cefd-loadgen size: %s %.0f/s for %.0f s: offered %.0f, delivered %llu/%llu, p99 %.1f ms, "
                     "cefd %.2f CPU-us/event, sender CPU %.0f%%, backlog %.0f->%.0f: %s\n",
                     phase, rate, hold_s, trial.offered_eps, static_cast<unsigned long long>(trial.delivered),
                     static_cast<unsigned long long>(trial.sent), trial.p99_ms, trial.cefd_cpu_us_per_event,
                     100 * trial.sender_cpu_share, trial.backlog_start, trial.backlog_end, trial.held ? "held" : trial.why.c_str());
        return trial;
    }

private:
    std::string accept_path() const {
        if (!options_.load.accept_log_path.empty()) return options_.load.accept_log_path;
        return options_.load.verify_path + ".accept";
    }
    static double backlog(const Scrape& metrics) {
        // In batches: the spool counts batches, the ring bytes (64 KiB is about a batch of input).
        return metrics.spool_pending_batches + metrics.ring_used_bytes / 65'536.0;
    }

    SizeOptions options_;
    std::vector<std::string> lines_;
    int pid_;
    DeliveryTracker tracker_;
    std::string run_prefix_ = "size" + std::to_string(::getpid()) + "t";
    int trial_number_ = 0;
};

}  // namespace

std::string judge(const Trial& trial, std::uint64_t latency_samples, double max_p99_ms) {
    if (trial.target_unreachable) return std::string(target_unreachable_why);
    if (trial.lost > 0) return "loss";
    if (trial.backlog_end > 2 * trial.backlog_start + 16) return "backlog growing";
    if (latency_samples == 0) return "no latency (is --accept-log on?)";
    if (trial.p99_ms > max_p99_ms) return "p99 over bound";
    if (trial.target_backpressure) return "target backpressure (cefd did not take the rate)";
    if (trial.generator_limited) return std::string(generator_limited_why_prefix) + trial.generator_why;
    return "";
}

std::vector<Trial> search(const SizeOptions& options, const std::vector<std::string>& lines, int pid) {
    Sizer sizer(options, lines, pid);
    std::vector<Trial> trials;
    // 1. Ramp: double until a step fails or --max-rate holds.
    const double ramp_hold_s = std::min(options.hold_s, std::max(2.0, options.hold_s / 4));
    double held = 0;
    double failed = 0;
    for (double rate = options.start_rate;; rate = std::min(rate * 2, options.max_rate)) {
        trials.push_back(sizer.run_trial(rate, ramp_hold_s, "ramp"));
        if (trials.back().target_unreachable) return trials;
        if (!trials.back().held) {
            failed = rate;
            break;
        }
        held = rate;
        if (rate >= options.max_rate) break;
    }
    // 2. Confirm and bisect with full-length trials: the highest rate that holds for --hold-s.
    double low = 0;  // held for --hold-s
    double high = failed != 0 ? failed : options.max_rate * 2;
    double candidate = held;
    for (int step = 0; candidate > 0 && step <= options.bisect_steps; ++step) {
        const Trial& trial = trials.emplace_back(sizer.run_trial(candidate, options.hold_s, "bisect"));
        if (trial.target_unreachable) break;
        if (trial.held) low = candidate;
        else high = candidate;
        if (low >= options.max_rate) break;
        if (low > 0 && high / low <= 1.1) break;
        candidate = low > 0 ? (low + std::min(high, options.max_rate)) / 2 : candidate / 2;
        if (candidate < 1) break;
    }
    return trials;
}

/// The config text with runtime.workers = lanes: an existing key in [runtime] is dropped and

}  // namespace cefd::loadgen::sizing
