// bench/micro/receive_bench.cpp: the receive path on loopback, io_uring against recvmmsg in the
// same run, plus the TCP framer alone.
//
// BM_UdpReceive/<engine>: the benchmark thread sends datagrams (one CEF line each, sendmmsg of
// 64) to a Receiver running on its own thread and drains the lane ring. Reported:
//   rx_cpu_us_per_datagram  CPU time of the receive thread (CLOCK of that thread) per datagram
//                           it wrote to the ring: the figure the "under 1 us" target is about
//   rx_datagrams_per_s      datagrams written to the ring per wall second (sender-bound here)
//   lost                    kernel drops + no-buffer + ring-full counts (a fast sender on a
//                           2-core box can outrun the receiver; nothing is lost silently)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/clock.h"
#include "stages/receive/engine_base.h"
#include "stages/receive/receive.h"
#include "stages/receive/tcp_framing.h"

namespace {

using cefd::ReceiveConfig;

std::string sample_line() {
    std::ifstream in(std::string(CEFD_SOURCE_DIR) + "/tests/data/synthetic-darktrace-cef.log");
    std::string line;
    while (std::getline(in, line))
        if (!line.empty() && line[0] != '#') return line;
    return std::string(400, 'x');
}

int free_udp_port() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    ::close(fd);
    return ntohs(address.sin_port);
}

std::int64_t thread_cpu_ns(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void BM_UdpReceive(benchmark::State& state, ReceiveConfig::Engine engine) {
    if (engine == ReceiveConfig::Engine::io_uring && !cefd::receive::probe_uring().ok()) {
        state.SkipWithError(("io_uring unusable: " + cefd::receive::probe_uring().error().message).c_str());
        return;
    }
    const int port = free_udp_port();
    ReceiveConfig config;
    config.listen = "127.0.0.1";
    config.udp_port = static_cast<std::uint16_t>(port);
    config.tcp_port = 0;
    config.engine = engine;
    config.buffers_per_core = 4096;
    cefd::ByteRing ring(64 << 20);
    auto receiver = cefd::Receiver::open(config, 0, ring);
    if (!receiver) {
        state.SkipWithError(receiver.error().describe().c_str());
        return;
    }
    std::jthread thread([&](std::stop_token stop) { receiver.value()->run(stop); });
    clockid_t clock{};
    pthread_getcpuclockid(thread.native_handle(), &clock);

    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);
    std::string line = sample_line();
    constexpr unsigned batch = 64;
    iovec iov{line.data(), line.size()};
    std::vector<mmsghdr> messages(batch);
    for (auto& m : messages) {
        m.msg_hdr.msg_iov = &iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    auto drain = [&] {
        std::uint64_t n = 0;
        for (auto r = ring.front(); !r.empty(); r = ring.front()) {
            ring.pop();
            ++n;
        }
        return n;
    };

    const cefd::ReceiveStats& stats = receiver.value()->stats();
    auto accounted = [&] {
        return cefd::read(stats.datagrams) + cefd::read(stats.kernel_drops) +
               cefd::read(stats.ring_full);
    };
    const std::uint64_t base = accounted();
    const std::uint64_t base_written = cefd::read(stats.datagrams);
    const std::int64_t cpu_start = thread_cpu_ns(clock);
    const std::int64_t wall_start = cefd::monotonic_ns();
    std::uint64_t sent = 0;
    for (auto _ : state) {
        unsigned done = 0;
        while (done < batch) {
            const int n = ::sendmmsg(fd, messages.data() + done, batch - done, 0);
            if (n <= 0) break;
            done += static_cast<unsigned>(n);
        }
        sent += done;
        drain();
    }
    // Let the receiver finish what is in flight (bounded wait; kernel drops show up late).
    const std::int64_t deadline = cefd::monotonic_ns() + 2'000'000'000;
    while (accounted() - base < sent && cefd::monotonic_ns() < deadline) {
        drain();
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    drain();
    const std::int64_t wall_ns = cefd::monotonic_ns() - wall_start;
    const std::int64_t cpu_ns = thread_cpu_ns(clock) - cpu_start;
    const std::uint64_t written = cefd::read(stats.datagrams) - base_written;
    thread.request_stop();
    thread.join();
    ::close(fd);

    state.SetItemsProcessed(static_cast<std::int64_t>(sent));
    state.SetBytesProcessed(static_cast<std::int64_t>(sent * line.size()));
    state.counters["rx_cpu_us_per_datagram"] =
        written == 0 ? 0.0 : static_cast<double>(cpu_ns) / 1000.0 / static_cast<double>(written);
    state.counters["rx_datagrams_per_s"] =
        static_cast<double>(written) * 1e9 / static_cast<double>(wall_ns);
    state.counters["lost"] = static_cast<double>(sent - std::min(sent, written));
}
BENCHMARK_CAPTURE(BM_UdpReceive, io_uring, ReceiveConfig::Engine::io_uring)->UseRealTime();
BENCHMARK_CAPTURE(BM_UdpReceive, recvmmsg, ReceiveConfig::Engine::recvmmsg)->UseRealTime();

// The RFC 6587 framer over a read's worth of mixed frames (no sockets).
void BM_TcpFramer_MixedFrames(benchmark::State& state) {
    const std::string line = sample_line();
    std::string stream;
    std::int64_t frames = 0;
    while (stream.size() < 60'000) {
        stream += (frames % 2 == 0) ? std::to_string(line.size()) + " " + line : line + "\n";
        ++frames;
    }
    cefd::receive::TcpFramer framer(65'536);
    std::size_t delivered = 0;
    for (auto _ : state) {
        std::string_view pending(stream);
        framer.drain(pending, false, [&](std::string_view frame, cefd::receive::Cut) {
            delivered += frame.size();
            return true;
        });
        benchmark::DoNotOptimize(delivered);
    }
    state.SetItemsProcessed(state.iterations() * frames);
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(stream.size()));
}
BENCHMARK(BM_TcpFramer_MixedFrames);

}  // namespace

BENCHMARK_MAIN();
