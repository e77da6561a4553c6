// bench/micro/send_bench.cpp: the sender thread's CPU per delivered row: HTTP/1.1 over loopback
// to a minimal keep-alive responder that answers 204 (its CPU is not counted: Google
// Benchmark's CPU time is the calling thread's, and Sender::run runs on it). Bodies are real
// 1 MiB gzip batches of ~1 KB rows. Auth "none": the token is cached for an hour in real runs.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <string>
#include <thread>

#include "stages/send/body.h"
#include "stages/send/send.h"

namespace cefd {
namespace {

/// Answers every request with 204 on keep-alive connections. Plain sockets, one thread per
/// connection; only as much HTTP as libcurl's requests need (Content-Length bodies).
class NoContentServer {
public:
    NoContentServer() {
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        socklen_t len = sizeof addr;
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        ::listen(listen_fd_, 16);
        acceptor_ = std::thread([this] {
            while (true) {
                const int fd = ::accept(listen_fd_, nullptr, nullptr);
                if (fd < 0) return;
                std::thread([fd] { serve(fd); }).detach();
            }
        });
    }
    ~NoContentServer() {
        ::shutdown(listen_fd_, SHUT_RDWR);
        ::close(listen_fd_);
        acceptor_.join();
    }
    [[nodiscard]] int port() const { return port_; }

private:
    static void serve(int fd) {
        std::string buffer;
        std::vector<char> chunk(1 << 16);
        while (true) {
            const auto header_end = buffer.find("\r\n\r\n");
            if (header_end == std::string::npos) {
                const ssize_t n = ::recv(fd, chunk.data(), chunk.size(), 0);
                if (n <= 0) break;
                buffer.append(chunk.data(), static_cast<std::size_t>(n));
                continue;
            }
            std::size_t length = 0;
            const auto at = buffer.find("Content-Length: ");
            if (at != std::string::npos && at < header_end) length = std::strtoul(buffer.c_str() + at + 16, nullptr, 10);
            while (buffer.size() < header_end + 4 + length) {
                const ssize_t n = ::recv(fd, chunk.data(), chunk.size(), 0);
                if (n <= 0) { ::close(fd); return; }
                buffer.append(chunk.data(), static_cast<std::size_t>(n));
            }
            buffer.erase(0, header_end + 4 + length);
            static constexpr char answer[] = "HTTP/1.1 204 No Content\r\n\r\n";
            if (::send(fd, answer, sizeof answer - 1, MSG_NOSIGNAL) < 0) break;
        }
        ::close(fd);
    }
    int listen_fd_ = -1;
    int port_ = 0;
    std::thread acceptor_;
};

class RepeatSource final : public BatchSource {
public:
    RepeatSource(const SealedBatch& batch, std::size_t count) {
        for (std::size_t i = 0; i < count; ++i) queue_.push_back(SpooledBatch{.id = i + 1, .batch = batch});
    }
    std::optional<SpooledBatch> next(std::int64_t) override {
        if (queue_.empty()) return std::nullopt;
        SpooledBatch b = std::move(queue_.front());
        queue_.pop_front();
        ++out_;
        return b;
    }
    void ack(std::uint64_t) override { --out_; }
    void release(SpooledBatch&& batch) override {
        --out_;
        queue_.push_back(std::move(batch));
    }
    [[nodiscard]] std::size_t pending() const override { return queue_.size() + out_; }

private:
    std::deque<SpooledBatch> queue_;
    std::size_t out_ = 0;
};

SealedBatch one_mib_batch() {
    std::string json = "[";
    std::uint32_t rows = 0;
    // Text plus 96 pseudo-random hex digits per row: gzip ratio close to real CEF (about 9).
    std::uint64_t state = 0x9E3779B97F4A7C15ULL;
    while (json.size() < 1'040'000) {
        std::string message = "Device scanned multiple internal hosts; model=Device::Network Scan; score=0.83; ";
        for (int k = 0; k < 96; ++k) {
            state ^= state << 13, state ^= state >> 7, state ^= state << 17;
            message += "0123456789abcdef"[state & 15];
        }
        if (rows > 0) json += ',';
        json += R"({"TimeGenerated":"2026-11-29T08:28:21.123456Z","DeviceVendor":"Darktrace","DeviceProduct":"AI Analyst","ExtID":")" +
                std::to_string(rows) + R"(","DestinationPort":443,"Message":")" + message + "\"}";
        ++rows;
    }
    json += ']';
    SealedBatch batch;
    batch.body = gzip_body(json);
    batch.rows = rows;
    batch.json_bytes = static_cast<std::uint32_t>(json.size());
    return batch;
}

void BM_SendLoopback_1MiBBatches(benchmark::State& state) {
    NoContentServer server;
    const SealedBatch batch = one_mib_batch();
    AzureConfig config;
    config.target.endpoint = "http://127.0.0.1:" + std::to_string(server.port());
    config.target.dcr_id = "dcr-00000000000000000000000000000000";
    config.auth = AzureConfig::Auth::none;
    config.dead_letter_dir = "/tmp";
    constexpr std::size_t batches = 16;
    std::uint64_t rows = 0;
    for (auto _ : state) {
        state.PauseTiming();
        RepeatSource source(batch, batches);
        auto sender = Sender::create(config, source);
        std::stop_source stop;
        stop.request_stop();  // run() drains everything, then returns
        state.ResumeTiming();
        (*sender)->run(stop.get_token());
        rows += read((*sender)->stats().delivered_rows);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(rows));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * batches * batch.body.size()));
}
BENCHMARK(BM_SendLoopback_1MiBBatches)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace cefd

BENCHMARK_MAIN();
