// cefd-send-standin-bench: gzip + send throughput of the Sender against a running stand-in on
// loopback, for stages/send/README.md. Not a unit benchmark (it needs the stand-in process), so
// it lives here rather than in bench/micro.
//
// Each batch is ~1 MiB of CommonSecurityLog JSON (~1 KB rows, distinct ExtID per row) built
// before timing. Timed on this thread, which runs Sender::run: gzip of every batch (libdeflate
// level 1, stages/send/body.h; the batcher's igzip is ~4x cheaper, stages/batch/README.md) and
// all of the sender's HTTP work. The stand-in's CPU is not counted.
//
//   cefd-send-standin-bench --url URL --ca-file PEM [--seconds 4] [--in-flight 4]
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <stop_token>
#include <string>

#include "engine/clock.h"
#include "stages/send/body.h"
#include "stages/send/send.h"

namespace {

double thread_cpu_s() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::string batch_json(std::uint64_t batch, std::uint32_t& rows) {
    std::string json = "[";
    rows = 0;
    while (json.size() < 1'040'000) {
        if (rows > 0) json += ',';
        json += R"({"TimeGenerated":"2026-11-29T08:28:21.123456Z","DeviceVendor":"Darktrace","DeviceProduct":"Enterprise Immune System","DeviceVersion":"6.1","DeviceEventClassID":"26","Activity":"Anomalous Connection / Data Sent to Rare Domain","LogSeverity":"7","SourceIP":"10.12.)" +
                std::to_string(rows % 250) + R"(.7","DestinationIP":"203.0.113.)" + std::to_string(batch % 250) +
                R"(","DestinationPort":443,"Computer":"dt-master-01","ExtID":")" + std::to_string(batch) + "-" +
                std::to_string(rows) +
                R"(","Message":"Model breach: the device sent an unusual volume of data to a rare external endpoint over HTTPS; score 0.87, model Anomalous Connection::Data Sent to Rare Domain, tags Compliance, Exfiltration","AdditionalExtensions":"cs1Label=Model URL;cs1=https://dt-master-01/#modelbreach/12345;cs2Label=Tags;cs2=Compliance,Exfil;dvchost=host-)" +
                std::to_string(rows) + R"("})";
        ++rows;
    }
    return json + "]";
}

/// Hands out freshly gzipped batches until told to stop; counts acks.
class GzipSource final : public cefd::BatchSource {
public:
    std::optional<cefd::SpooledBatch> next(std::int64_t) override {
        if (stopping_) return std::nullopt;
        const std::uint64_t id = next_id_++;
        std::uint32_t rows = 0;
        const std::string& json = json_[id % json_.size()];
        rows = rows_[id % json_.size()];
        cefd::SpooledBatch out{.id = id};
        out.batch.body = cefd::gzip_body(json);  // timed: it runs on the sender thread
        out.batch.rows = rows;
        out.batch.json_bytes = static_cast<std::uint32_t>(json.size());
        ++outstanding_;
        return out;
    }
    void ack(std::uint64_t) override {
        --outstanding_;
        ++acked_;
    }
    void release(cefd::SpooledBatch&&) override { --outstanding_; }
    [[nodiscard]] std::size_t pending() const override { return outstanding_; }

    void prepare(int distinct) {
        for (int i = 0; i < distinct; ++i) {
            std::uint32_t rows = 0;
            json_.push_back(batch_json(static_cast<std::uint64_t>(i), rows));
            rows_.push_back(rows);
        }
    }
    std::vector<std::string> json_;
    std::vector<std::uint32_t> rows_;
    std::atomic<bool> stopping_{false};
    std::uint64_t next_id_ = 1;
    std::size_t outstanding_ = 0;
    std::uint64_t acked_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
    std::string url;
    std::string ca_file;
    double seconds = 4;
    std::uint32_t in_flight = 4;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        if (flag == "--url") url = argv[i + 1];
        else if (flag == "--ca-file") ca_file = argv[i + 1];
        else if (flag == "--seconds") seconds = std::atof(argv[i + 1]);
        else if (flag == "--in-flight") in_flight = static_cast<std::uint32_t>(std::atoi(argv[i + 1]));
        else return std::fprintf(stderr, "unknown flag %s\n", flag.c_str()), 2;
    }
    if (url.empty()) return std::fprintf(stderr, "usage: %s --url URL [--ca-file PEM] [--seconds S] [--in-flight N]\n", argv[0]), 2;

    cefd::AzureConfig config;
    config.target.endpoint = url;
    config.target.dcr_id = "dcr-00000000000000000000000000000000";
    config.authority_host = url;
    config.tenant_id = "00000000-0000-0000-0000-000000000000";
    config.client_id = "cefd-test-client";
    config.client_secret = cefd::Secret("cefd-test-secret");
    config.ca_file = ca_file;
    config.max_in_flight = in_flight;
    config.dead_letter_dir = "/tmp/cefd-send-standin-bench-dead-letter";
    GzipSource source;
    source.prepare(8);
    auto sender = cefd::Sender::create(config, source);
    if (!sender.ok()) return std::fprintf(stderr, "%s\n", sender.error().describe().c_str()), 1;

    std::stop_source stop;
    std::atomic<bool> done{false};
    std::thread timer([&] {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
        while (!done && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));  // a timer, not a wait for a condition
        stop.request_stop();
    });
    const double cpu0 = thread_cpu_s();
    const std::int64_t wall0 = cefd::monotonic_ns();
    // Stop handing out new batches once stop is requested; run() then drains what it holds.
    std::stop_callback stop_new(stop.get_token(), [&] { source.stopping_ = true; });
    (*sender)->run(stop.get_token());
    const double wall = static_cast<double>(cefd::monotonic_ns() - wall0) / 1e9;
    const double cpu = thread_cpu_s() - cpu0;
    done = true;
    timer.join();
    const auto& stats = (*sender)->stats();
    const double rows = static_cast<double>(cefd::read(stats.delivered_rows));
    std::printf("{\"in_flight\":%u,\"batches\":%llu,\"rows\":%.0f,\"wall_s\":%.2f,\"rows_per_s\":%.0f,"
                "\"sender_cpu_s\":%.3f,\"cpu_us_per_row\":%.3f,\"retries\":%llu}\n",
                in_flight, static_cast<unsigned long long>(cefd::read(stats.delivered_batches)), rows, wall, rows / wall,
                cpu, rows > 0 ? cpu * 1e6 / rows : 0.0, static_cast<unsigned long long>(cefd::read(stats.retries)));
    return 0;
}
