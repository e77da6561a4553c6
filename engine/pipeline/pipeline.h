// engine/pipeline/pipeline.h: builds the pipeline from a Config, runs it, and shuts it down in
// order. This is the only code that names every stage. Read pipeline.cpp first: it is the
// diagram in README.md, as code.
//
//   lane i:  Receiver --ByteRing--> worker [Parser -> Deduper -> Batcher] --+
//                                                                           +--> Spool --> Sender
//   lane j:  Receiver --ByteRing--> worker [Parser -> Deduper -> Batcher] --+
//
// Threads: per lane, one receive thread and one worker thread (pinned, by default both to the
// lane's core); one sender thread; one metrics thread. The caller's thread only calls start(),
// stop() and reads metrics.
//
// Shutdown order (stop()): receivers stop reading; workers drain their rings and seal their
// batches into the spool; the sender delivers what it can within the remaining time and leaves
// the rest in the spool for the next start; the spool closes last.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/metrics/health.h"
#include "engine/metrics/metrics.h"
#include "engine/pipeline/config.h"
#include "engine/pipeline/metrics_server.h"
#include "engine/queue/byte_ring.h"
#include "engine/result.h"
#include "engine/row/row.h"

namespace cefd {

class Pipeline {
public:
    static Result<std::unique_ptr<Pipeline>> build(const Config& config);
    ~Pipeline();
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    /// Starts every thread. Call once.
    void start();
    /// Ordered shutdown (see the header comment); returns when every thread has ended.
    void stop();
    /// SIGHUP: every receiver rereads its TLS certificate, key and client CA at its next pass.
    void reload();

    /// What reload_config() did, for the log (main.cpp prints it).
    struct ReloadReport {
        bool ok = true;
        std::vector<std::string> applied;        // "batch.max_bytes (1048576 -> 4096)"
        std::vector<std::string> needs_restart;  // "receive.udp_port (running 5514, file 5515)"
        std::vector<std::string> problems;       // why a valid file could not be applied
    };
    /// SIGHUP with the config file read again and checked (load_config_file): applies every
    /// reloadable key that changed (config_keys()) and leaves the rest as it runs. Nothing in
    /// flight is lost: workers seal their open batches before new batch limits apply, the
    /// sender switches targets and credentials between requests. Counted as ok, or as invalid
    /// when the sender refuses the new credentials (then nothing is applied).
    ReloadReport reload_config(const Config& file);
    /// SIGHUP with a file that did not load: counts an invalid reload; the running config stays.
    void reload_invalid();
    /// The config as it runs now (the one built with, plus what reload_config() applied).
    /// Main thread only.
    [[nodiscard]] const Config& config() const noexcept { return config_; }

    [[nodiscard]] MetricsRegistry& metrics() noexcept { return metrics_; }
    /// The checks behind /readyz (listening, spool, send; token once the sender reports it).
    [[nodiscard]] const ReadinessChecks& readiness() const noexcept { return checks_; }
    /// One line of the main counters, for the periodic and final log lines. Generated from the
    /// registered series (SummaryLine), so a renamed metric fails at start-up, not silently.
    [[nodiscard]] std::string summary() const;
    [[nodiscard]] std::size_t lane_count() const noexcept { return lanes_.size(); }

private:
    struct WorkerStats {
        Counter messages{0};   // records taken from the ring
    };
    /// What a worker takes over from a reload: dedupe settings and batch limits.
    struct LaneSettings {
        DedupeConfig dedupe;
        std::uint32_t batch_max_bytes = 0;
        std::uint32_t batch_linger_ms = 0;
    };
    struct Lane {
        Lane(const Config& config, unsigned index, BatchSink& sink);
        unsigned index;
        ByteRing ring;
        std::unique_ptr<Receiver> receiver;
        Parser parser;
        Deduper deduper;
        Batcher batcher;
        Row row;
        WorkerStats stats;
        std::atomic<bool> draining{false};  // set after the receiver stopped: empty the ring, then end
        std::uint64_t settings_generation = 0;  // the lane_settings_generation_ it has applied (worker only)
        std::jthread receive_thread;
        std::jthread worker_thread;
    };

    explicit Pipeline(const Config& config);
    void run_worker(Lane& lane);
    void register_metrics();
    void register_reload_metrics();
    void register_checks();
    void apply_lane_settings(Lane& lane);

    Config config_;
    MetricsRegistry metrics_;
    ReadinessChecks checks_;
    std::unique_ptr<SummaryLine> summary_;
    std::atomic<unsigned> receiving_lanes_{0};  // receive threads inside Receiver::run()
    std::atomic<bool> stopping_{false};
    // Reload: the main thread publishes LaneSettings and bumps the generation; each worker
    // compares it once per burst and copies the settings under the mutex when it moved.
    std::mutex lane_settings_mutex_;
    LaneSettings lane_settings_;
    std::atomic<std::uint64_t> lane_settings_generation_{0};
    Counter reloads_ok_{0};
    Counter reloads_invalid_{0};
    Counter last_reload_success_s_{0};  // gauge: unix seconds
    // Declared in build order: the shared tail first, lanes last. Destruction runs in reverse,
    // so intake stops first and the spool closes last.
    std::unique_ptr<Spool> spool_;
    std::unique_ptr<Sender> sender_;
    std::deque<Lane> lanes_;  // a deque: lanes never move, threads hold references
    std::jthread sender_thread_;
    std::unique_ptr<MetricsServer> metrics_server_;
    std::unique_ptr<Capturer> capture_;  // [capture]; null when off. Stopped after the workers
    bool started_ = false;
    bool stopped_ = false;
};

}  // namespace cefd
