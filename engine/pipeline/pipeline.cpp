#include "engine/pipeline/pipeline.h"

#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "engine/clock.h"
#include "engine/log.h"
#include "engine/record.h"
#include "engine/runtime/threads.h"
#include "stages/receive/engine_choice.h"

namespace cefd {
namespace {

/// Lane i's core from a configured list, or the i-th core this process may use.
std::uint32_t core_for(unsigned lane, const std::vector<std::uint32_t>& configured,
                       const std::vector<std::uint32_t>& allowed) {
    if (!configured.empty()) return configured[lane % configured.size()];
    return allowed.empty() ? 0 : allowed[lane % allowed.size()];
}

#ifndef CEFD_VERSION
#define CEFD_VERSION "unknown"
#endif
#ifndef CEFD_COMMIT
#define CEFD_COMMIT "unknown"
#endif

// The /readyz checks on the delivery side. Sender::health() (token and last-send state) is
// used when the Sender has it; until then the "send" check only looks at the backlog. A
// template, so that `requires` can ask whether the member exists.
template <class S>
void register_send_checks(ReadinessChecks& checks, const S& sender, const Spool& spool, std::uint32_t backlog_max) {
    if constexpr (requires(const S& s) { s.health(); }) {
        checks.add("token", [&sender] {
            const auto health = sender.health();
            if (!health.token_valid) return ReadyCheck{false, "no valid token: " + std::string(health.last_error)};
            return ReadyCheck{true, "valid until unix " + std::to_string(health.token_expires_unix_s)};
        });
        checks.add("send", [&sender, &spool, backlog_max] {
            const auto health = sender.health();
            const std::size_t pending = spool.pending();
            const std::string backlog = std::to_string(pending) + " batches pending (limit " + std::to_string(backlog_max) + ")";
            if (health.last_send_ok) return ReadyCheck{true, "last send ok; " + backlog};
            const std::string failed = "last send failed (" + std::string(health.last_error) + ", " +
                                       std::to_string(health.consecutive_failures) + " in a row); " + backlog;
            return ReadyCheck{pending < backlog_max, failed};
        });
    } else {
        checks.add("send", [&spool, backlog_max] {
            const std::size_t pending = spool.pending();
            return ReadyCheck{pending < backlog_max,
                              std::to_string(pending) + " batches pending (limit " + std::to_string(backlog_max) + ")"};
        });
    }
}

// A worker drains at most this many messages before it checks linger deadlines again.
constexpr int worker_burst = 512;
// The longest a worker sleeps with an empty ring: bounds how late a linger deadline is noticed.
constexpr std::int64_t worker_idle_wait_ns = 50'000'000;
// After a pass that found work, a worker that finds its ring empty naps this long without arming
// the doorbell, so a steady stream wakes it ~500 times a second instead of once per receive
// batch, and the receiver skips the futex wake. The ring holds far more than 2 ms of any rate
// (16 MiB default = ~18,000 853-byte events); it is 2 ms more latency on rows that wait up to
// batch.linger_ms anyway.
constexpr std::int64_t worker_nap_ns = 2'000'000;

}  // namespace

Pipeline::Lane::Lane(const Config& config, unsigned lane_index, BatchSink& sink)
    : index(lane_index),
      ring(config.runtime.ring_bytes),
      parser(config.parse),
      deduper(config.dedupe),
      batcher(config.batch, sink) {}

Pipeline::Pipeline(const Config& config) : config_(config) {}

// The diagram in pipeline.h, as code. To change the shape of the pipeline, change this function.
Result<std::unique_ptr<Pipeline>> Pipeline::build(const Config& config) {
    auto p = std::unique_ptr<Pipeline>(new Pipeline(config));
    const Config& c = p->config_;

    // The shared tail first, so lanes have somewhere to deliver.
    auto spool = Spool::open(c.spool);
    if (!spool) return spool.error();
    p->spool_ = std::move(spool).value();
    auto sender = Sender::create(c.azure, *p->spool_);
    if (!sender) return sender.error();
    p->sender_ = std::move(sender).value();

    // One lane per worker: receive -> ring -> parse -> dedupe -> batch -> spool.
    const unsigned lanes = c.runtime.workers != 0 ? c.runtime.workers
                                                  : static_cast<unsigned>(std::max<std::size_t>(1, allowed_cores().size()));
    // receive.engine = "auto": measured (or remembered from an earlier start in the spool
    // directory) once, here, before any lane opens; every lane then runs the same engine.
    if (c.receive.engine == ReceiveConfig::Engine::automatic)
        (void)receive::automatic_engine(c.receive, c.spool.dir + "/" + std::string(Spool::receive_engine_file));
    for (unsigned i = 0; i < lanes; ++i) {
        Lane& lane = p->lanes_.emplace_back(c, i, *p->spool_);
        auto receiver = Receiver::open(c.receive, i, lane.ring, lanes);
        if (!receiver) return receiver.error();
        lane.receiver = std::move(receiver).value();
    }

    // [capture]: lane workers copy each message into a bounded per-lane queue; full = left out.
    if (c.capture.enabled()) {
        auto capture = Capturer::open(c.capture, lanes);
        if (!capture) return capture.error();
        p->capture_ = std::move(capture).value();
    }

    if (!c.metrics.listen.empty()) {
        auto server = MetricsServer::open(c.metrics, p->metrics_, p->checks_);
        if (!server) return server.error();
        p->metrics_server_ = std::move(server).value();
    }
    p->register_metrics();
    p->register_reload_metrics();
    p->register_checks();
    return p;
}

Pipeline::~Pipeline() { stop(); }

void Pipeline::start() {
    CEFD_ASSERT(!started_);
    started_ = true;
    const auto allowed = allowed_cores();
    const bool pin = config_.runtime.pin_threads;
    for (Lane& lane : lanes_) {
        const std::uint32_t receive_core = core_for(lane.index, config_.runtime.receive_cores, allowed);
        const std::uint32_t worker_core = core_for(lane.index, config_.runtime.worker_cores, allowed);
        lane.receive_thread = std::jthread([this, &lane, receive_core, pin](std::stop_token stop) {
            name_current_thread(("cefd-recv-" + std::to_string(lane.index)).c_str());
            if (pin) pin_current_thread(receive_core);
            receiving_lanes_.fetch_add(1, std::memory_order_relaxed);
            lane.receiver->run(stop);
            receiving_lanes_.fetch_sub(1, std::memory_order_relaxed);
        });
        lane.worker_thread = std::jthread([this, &lane, worker_core, pin] {
            name_current_thread(("cefd-work-" + std::to_string(lane.index)).c_str());
            if (pin) pin_current_thread(worker_core);
            run_worker(lane);
        });
    }
    if (capture_) capture_->start();
    sender_thread_ = std::jthread([this](std::stop_token stop) {
        name_current_thread("cefd-send");
        sender_->run(stop);
    });
    if (metrics_server_) metrics_server_->start();
}

namespace {

// Takes the dedupe key as soon as the parser has read the syslog header, so the table entry's
// cache line is on its way while the CEF extension is parsed and mapped (the lookup was a cache
// miss on ~80 % of its samples before, bench/README.md "dedupe prefetch").
struct DedupeKeyEarly final : ParseObserver {
    DedupeKeyEarly(Deduper& deduper, const SourceAddress& source) : deduper(deduper), source(source) {}
    void on_dedupe_text(std::string_view text) noexcept override { key = deduper.key(source, text); }
    Deduper& deduper;
    const SourceAddress& source;
    std::uint64_t key = 0;
};

}  // namespace

// The worker's loop: everything between the ring and the spool happens here, on one thread,
// with no allocation per message.
void Pipeline::run_worker(Lane& lane) {
    bool found_work = false;  // the previous pass took messages
    for (;;) {
        int taken = 0;
        for (; taken < worker_burst; ++taken) {
            const std::span<const std::byte> record = lane.ring.front();
            if (record.empty()) break;
            const auto [meta, message] = read_message_record(record);
            if (capture_) capture_->offer(lane.index, meta, message);
            DedupeKeyEarly dedupe(lane.deduper, meta.source);
            const ParseResult parsed = lane.parser.parse(message, meta, lane.row, &dedupe);
            if (parsed.outcome == ParseOutcome::row && !lane.deduper.is_repeat(dedupe.key, meta.receive_time_ns)) {
                lane.batcher.append(lane.row);
            }
            lane.ring.pop();  // only now: the row's views pointed into the record
        }
        if (taken > 0) bump(lane.stats.messages, static_cast<std::uint64_t>(taken));
        if (lane_settings_generation_.load(std::memory_order_acquire) != lane.settings_generation) apply_lane_settings(lane);
        lane.batcher.seal_if_due(monotonic_ns());
        if (taken == 0) {
            // The receiver has stopped and the ring is empty: nothing more can arrive.
            if (lane.draining.load(std::memory_order_acquire) && lane.ring.front().empty()) break;
            if (found_work) {
                const timespec nap{0, worker_nap_ns};
                ::nanosleep(&nap, nullptr);
            } else {
                lane.ring.wait_for_data(worker_idle_wait_ns);
            }
        }
        found_work = taken > 0;
    }
    lane.batcher.seal_all();
}

void Pipeline::stop() {
    if (!started_ || stopped_) return;
    stopped_ = true;
    stopping_.store(true, std::memory_order_relaxed);  // /readyz fails from here on
    const std::int64_t started_ns = monotonic_ns();
    // 1. Intake stops.
    for (Lane& lane : lanes_) lane.receive_thread.request_stop();
    for (Lane& lane : lanes_) lane.receive_thread.join();
    // 2. Workers empty their rings and seal their batches into the spool.
    for (Lane& lane : lanes_) {
        lane.draining.store(true, std::memory_order_release);
        lane.ring.notify();
    }
    for (Lane& lane : lanes_) lane.worker_thread.join();
    if (capture_) capture_->stop();  // writes what the workers queued, closes the file
    // 3. The sender delivers what it can within its drain time; the rest stays spooled.
    sender_thread_.request_stop();
    sender_thread_.join();
    if (metrics_server_) metrics_server_->stop();
    CEFD_LOG(info, "stopped in %" PRId64 " ms; %zu batches left in the spool for the next start",
             (monotonic_ns() - started_ns) / 1'000'000, spool_->pending());
}

void Pipeline::reload() {
    for (Lane& lane : lanes_) lane.receiver->request_reload();
}

// ---- reload ------------------------------------------------------------------------------

void Pipeline::apply_lane_settings(Lane& lane) {
    LaneSettings settings;
    {
        const std::lock_guard lock(lane_settings_mutex_);
        settings = lane_settings_;
        lane.settings_generation = lane_settings_generation_.load(std::memory_order_relaxed);
    }
    lane.deduper.reconfigure(settings.dedupe);
    lane.batcher.reconfigure_limits(settings.batch_max_bytes, settings.batch_linger_ms);
}

void Pipeline::reload_invalid() { bump(reloads_invalid_); }

Pipeline::ReloadReport Pipeline::reload_config(const Config& file) {
    ReloadReport report;
    Config next = config_;
    bool azure = false;
    bool lanes = false;
    for (const ConfigChange& change : reload_changes(config_, file)) {
        const ConfigKey& key = *change.key;
        if (!key.reloadable) {
            report.needs_restart.push_back(key.full_name() + " (running " + change.running + ", file " + change.file + ")");
            continue;
        }
        copy_config_value(next, file, key);
        report.applied.push_back(key.full_name() + " (" + change.running + " -> " + change.file + ")");
        azure = azure || key.table == "azure";
        lanes = lanes || key.table == "dedupe" || key.table == "batch";
    }
    // The one step that can still fail (a certificate that does not load), so it goes first.
    if (azure) {
        if (auto status = sender_->reconfigure(next.azure); !status) {
            report.ok = false;
            report.problems.push_back(status.error().describe());
            report.applied.clear();
            bump(reloads_invalid_);
            return report;
        }
    }
    if (lanes) {
        const std::lock_guard lock(lane_settings_mutex_);
        lane_settings_ = LaneSettings{.dedupe = next.dedupe,
                                      .batch_max_bytes = next.batch.max_bytes,
                                      .batch_linger_ms = next.batch.linger_ms};
        lane_settings_generation_.fetch_add(1, std::memory_order_release);
    }
    for (Lane& lane : lanes_) lane.ring.notify();  // an idle worker takes its settings now
    if (next.runtime.log_level != config_.runtime.log_level) log::set_level(next.runtime.log_level);
    // Only the keys that changed are written: other threads read parts of config_ that never do.
    for (const ConfigChange& change : reload_changes(config_, next)) copy_config_value(config_, next, *change.key);
    bump(reloads_ok_);
    last_reload_success_s_.store(static_cast<std::uint64_t>(wall_clock_ns() / 1'000'000'000), std::memory_order_relaxed);
    return report;
}

void Pipeline::register_reload_metrics() {
    constexpr std::string_view help = "SIGHUP config reloads, by result: ok (applied), invalid (the file did not load "
                                      "or could not be applied; the running config stays).";
    metrics_.add("config_reloads_total", help, "result=\"ok\"", &reloads_ok_);
    metrics_.add("config_reloads_total", help, "result=\"invalid\"", &reloads_invalid_);
    metrics_.add("config_last_reload_success_timestamp_seconds",
                 "When the config was last reloaded successfully, in seconds since the Unix epoch; 0 = never.", "",
                 &last_reload_success_s_, MetricsRegistry::Kind::gauge);
}

void Pipeline::register_metrics() {
    metrics_.add_gauge("build_info", "Always 1; the labels say which build runs (commit as of the build's configure step).",
                       "version=\"" CEFD_VERSION "\",commit=\"" CEFD_COMMIT "\"", [] { return 1.0; });
    const double started_s = static_cast<double>(wall_clock_ns() / 1'000'000) / 1e3;
    metrics_.add_gauge("start_time_seconds", "When this process started, in seconds since the Unix epoch.", "",
                       [started_s] { return started_s; });
    for (const Lane& lane : lanes_) {
        const std::string labels = "lane=\"" + std::to_string(lane.index) + "\"";
        lane.receiver->register_metrics(metrics_);
        lane.parser.register_metrics(metrics_, labels);
        lane.deduper.register_metrics(metrics_, labels);
        lane.batcher.register_metrics(metrics_, labels);
        metrics_.add("worker_messages_total", "Messages the lane's worker took from its ring.", labels,
                     &lane.stats.messages);
        // A message the receiver cut is counted by the parser (parse_truncated_messages_total), not here too.
        const ByteRing* ring = &lane.ring;
        metrics_.add_gauge("ring_used_bytes", "Bytes waiting in the lane's ring.", labels,
                           [ring] { return static_cast<double>(ring->used_bytes()); });
    }
    spool_->register_metrics(metrics_);
    sender_->register_metrics(metrics_);
    if (capture_) capture_->register_metrics(metrics_);

    // The summary line names families; SummaryLine asserts each one is registered (above), so
    // renaming a metric without changing its field here stops the first start and every e2e test.
    using Field = SummaryLine::Field;
    summary_ = std::make_unique<SummaryLine>(
        metrics_,
        std::vector<SummaryLine::Group>{
            {"received",
             {Field{"udp", "receive_datagrams_total"}, Field{"tcp_frames", "receive_tcp_frames_total"},
              Field{"tls_frames", "receive_tls_frames_total"}}},
            {"",
             {Field{"rows", "parse_rows_total"}, Field{"syslog_rows", "parse_syslog_rows_total"},
              Field{"not_cef", "parse_not_cef_total"}, Field{"rejected", "parse_bad_cef_header_total"},
              Field{"deduplicated", "dedupe_deduplicated_total"}}},
            {"", {Field{"batches", "batch_batches_total"}, Field{"spooled_pending", "spool_pending_batches"}}},
            {"delivered",
             {Field{"rows", "send_delivered_rows_total"}, Field{"batches", "send_delivered_batches_total"},
              Field{"retries", "send_retries_total"}, Field{"dead_lettered", "send_dead_lettered_batches_total"}}},
            {"drops",
             {Field{"ring_full", "receive_ring_full_total"}, Field{"oversize", "receive_oversize_total"},
              Field{"kernel", "receive_kernel_drops_total"}, Field{"batch_rows", "batch_dropped_rows_total"},
              Field{"spool", "spool_dropped_batches_total"},
              Field{"tcp_unread_at_stop_bytes", "receive_tcp_unread_at_stop_bytes_total"},
              Field{"udp_unread_at_stop", "receive_udp_unread_at_stop_total"}}},
        });
}

void Pipeline::register_checks() {
    const unsigned lanes = static_cast<unsigned>(lanes_.size());
    checks_.add("listening", [this, lanes] {
        if (stopping_.load(std::memory_order_relaxed)) return ReadyCheck{false, "shutting down"};
        const unsigned receiving = receiving_lanes_.load(std::memory_order_relaxed);
        return ReadyCheck{receiving == lanes, std::to_string(receiving) + " of " + std::to_string(lanes) + " lanes receiving"};
    });
    checks_.add("spool", [this] {
        if (spool_->write_failing())
            return ReadyCheck{false, "writes are failing (disk full or I/O error; see cefd_spool_write_errors_total)"};
        if (::access(config_.spool.dir.c_str(), W_OK) != 0)
            return ReadyCheck{false, "directory not writable: " + std::string(std::strerror(errno))};
        return ReadyCheck{true, "writable"};
    });
    register_send_checks(checks_, *sender_, *spool_, config_.metrics.ready_backlog_batches_max);
}

std::string Pipeline::summary() const { return summary_->render(); }

}  // namespace cefd
