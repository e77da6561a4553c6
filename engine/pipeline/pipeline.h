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
#include <string>
#include <thread>

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
        Counter truncated{0};  // messages the receiver flagged as cut
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
        std::jthread receive_thread;
        std::jthread worker_thread;
    };

    explicit Pipeline(const Config& config);
    void run_worker(Lane& lane);
    void register_metrics();
    void register_checks();

    Config config_;
    MetricsRegistry metrics_;
    ReadinessChecks checks_;
    std::unique_ptr<SummaryLine> summary_;
    std::atomic<unsigned> receiving_lanes_{0};  // receive threads inside Receiver::run()
    std::atomic<bool> stopping_{false};
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
