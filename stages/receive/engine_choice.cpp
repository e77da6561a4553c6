#include "stages/receive/engine_choice.h"

#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <thread>
#include <vector>

#include "engine/clock.h"
#include "engine/log.h"
#include "engine/sysctl.h"
#include "engine/unique_fd.h"
#include "stages/receive/engine.h"

namespace cefd::receive {
namespace {

// A Darktrace model breach of the size real fleets send (853 bytes, the average of
// tools/loadgen/darktrace-cef-853b.txt), padded with its own description. The engines copy bytes
// and do not parse, so one line stands for all.
std::string calibration_line() {
    std::string line =
        "<132>Dec  5 05:00:00 dt-master CEF:0|Darktrace|DCIP|6.1.0|100|Anomalous Connection::Data Sent to "
        "Rare Domain|5|externalId=4170552 rt=1733374800000 dvc=10.0.0.5 dvchost=dt-master "
        "src=10.12.1.20 shost=ws-0120.corp.example dst=203.0.113.44 dhost=rare-domain.example "
        "dpt=443 proto=TCP cat=Compliance cs1Label=Model Name cs1=Anomalous Connection::Data Sent to "
        "Rare Domain cs2Label=Model UUID cs2=5e6a1b2c-0d3e-4f50-8a61-7b2c3d4e5f60 cs3Label=Breach URL "
        "cs3=https://dt-master/#modelbreach/4170552 cs4Label=Device Tags cs4=Server,Internal "
        "cn1Label=Score cn1=72 msg=";
    while (line.size() < 853) line += "The device sent an unusual volume of data to a rare external endpoint. ";
    line.resize(853);
    return line;
}

std::int64_t thread_cpu_ns(clockid_t clock) {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// A UDP port on 127.0.0.1 that nothing uses now: bound to port 0 and released.
Result<std::uint16_t> free_loopback_udp_port() {
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (!fd.valid() || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0)
        return Error{Errc::io, errno, "receive: no free UDP port on 127.0.0.1 for calibration"};
    return static_cast<std::uint16_t>(ntohs(address.sin_port));
}

// net.core.rmem_max, or the kernel's default for it when /proc cannot say.
std::uint32_t receive_buffer_cap() {
    const long long cap = read_sysctl("/proc/sys/net/core/rmem_max").value_or(212'992);
    return static_cast<std::uint32_t>(std::clamp<long long>(cap, 65'536, 1LL << 30));
}

const char* engine_word(ReceiveConfig::Engine engine) {
    return engine == ReceiveConfig::Engine::io_uring ? "io_uring" : "recvmmsg";
}

std::string us_list(std::span<const double> values) {
    std::string out;
    char text[32];
    for (const double value : values) {
        std::snprintf(text, sizeof text, "%s%.2f", out.empty() ? "" : "/", value);
        out += text;
    }
    return out;
}

}  // namespace

Result<EngineCost> measure_engine(ReceiveConfig::Engine engine, const ReceiveConfig& config, std::uint32_t datagrams,
                                  std::uint32_t rate) {
    std::string line = calibration_line();
    ReceiveConfig c = config;
    c.engine = engine;
    c.listen = "127.0.0.1";
    auto port = free_loopback_udp_port();  // the configured ports stay free for the lanes
    if (!port) return port.error();
    c.udp_port = port.value();
    c.tcp_port = 0;
    c.tls_port = 0;
    c.tls_cert_file.clear();
    c.tls_key_file.clear();
    c.tls_client_ca_file.clear();
    c.drain_timeout_ms = 0;  // nothing consumes the ring after the round: no waiting for room at stop
    // No more than net.core.rmem_max grants without privilege: no SO_RCVBUF warning from here.
    c.rcvbuf_bytes = std::min(c.rcvbuf_bytes, receive_buffer_cap());

    // A lane's ring has been written before: touch every page now, so the round does not count
    // first-touch page faults against the engine.
    ByteRing ring(4 << 20);
    while (write_message_record(ring, MessageMeta{}, line)) {}
    for (auto record = ring.front(); !record.empty(); record = ring.front()) ring.pop();
    ReceiveStats stats;
    std::atomic<bool> reload{false};
    auto opened = engine == ReceiveConfig::Engine::io_uring
                      ? open_uring_engine(c, calibration_lane, 1, ring, stats, reload)
                      : open_recvmmsg_engine(c, calibration_lane, 1, ring, stats, reload);
    if (!opened) return opened.error();
    std::unique_ptr<Engine> receiver = std::move(opened).value();

    sockaddr_in to{};
    socklen_t length = sizeof to;
    if (::getsockname(receiver->udp_fd(), reinterpret_cast<sockaddr*>(&to), &length) != 0)
        return Error{Errc::io, errno, "receive: calibration socket has no address"};
    UniqueFd out(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!out.valid() || ::connect(out.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0)
        return Error{Errc::io, errno, "receive: calibration sender cannot connect to 127.0.0.1"};

    std::jthread thread([&](std::stop_token stop) { receiver->run(std::move(stop)); });
    clockid_t clock{};
    ::pthread_getcpuclockid(thread.native_handle(), &clock);

    constexpr unsigned batch = 32;
    std::array<iovec, batch> iovs{};
    std::array<mmsghdr, batch> messages{};
    for (unsigned i = 0; i < batch; ++i) {
        iovs[i] = {line.data(), line.size()};
        messages[i].msg_hdr.msg_iov = &iovs[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    auto drain = [&] {
        for (auto record = ring.front(); !record.empty(); record = ring.front()) ring.pop();
    };
    auto accounted = [&] { return read(stats.datagrams) + read(stats.kernel_drops) + read(stats.ring_full); };
    auto send_batch = [&] {
        unsigned done = 0;
        while (done < batch) {
            const int n = ::sendmmsg(out.get(), messages.data() + done, batch - done, 0);
            if (n <= 0) break;
            done += static_cast<unsigned>(n);
        }
        return done;
    };
    // Waits until every datagram sent is written or counted, or nothing has moved for 20 ms (a
    // kernel drop is only reported with the next datagram read, so the count may stay short).
    auto settle = [&](std::uint64_t expected) {
        std::uint64_t seen = accounted();
        std::int64_t moved = monotonic_ns();
        while (seen < expected && monotonic_ns() - moved < 20'000'000) {
            drain();
            std::this_thread::sleep_for(std::chrono::microseconds(200));
            if (const std::uint64_t now = accounted(); now != seen) {
                seen = now;
                moved = monotonic_ns();
            }
        }
        drain();
    };

    // Warm up (the engine's first pass sets up its ring and buffers): not counted.
    const std::uint64_t warm = send_batch();
    settle(warm);
    const std::uint64_t written_before = read(stats.datagrams);
    const std::uint64_t accounted_before = accounted();
    const std::uint64_t lost_before = read(stats.kernel_drops) + read(stats.ring_full);
    const std::int64_t cpu_before = thread_cpu_ns(clock);

    EngineCost cost;
    const std::int64_t interval_ns = std::int64_t{batch} * 1'000'000'000 / std::max<std::uint32_t>(rate, 1);
    timespec next{};
    ::clock_gettime(CLOCK_MONOTONIC, &next);
    while (cost.sent < datagrams) {
        next.tv_nsec += interval_ns;
        while (next.tv_nsec >= 1'000'000'000) {
            next.tv_nsec -= 1'000'000'000;
            ++next.tv_sec;
        }
        ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
        const unsigned sent = send_batch();
        if (sent == 0) break;
        cost.sent += sent;
        drain();
    }
    settle(accounted_before + cost.sent);
    cost.cpu_ns = thread_cpu_ns(clock) - cpu_before;
    cost.written = read(stats.datagrams) - written_before;
    cost.lost = read(stats.kernel_drops) + read(stats.ring_full) - lost_before;
    thread.request_stop();
    thread.join();
    if (cost.written == 0)
        return Error{Errc::io, 0, std::string("receive: calibration: ") + engine_word(engine) + " received nothing"};
    return cost;
}

EngineChoice decide_engine(std::span<const double> uring_us, std::span<const double> recvmmsg_us) {
    const std::size_t rounds = std::min(uring_us.size(), recvmmsg_us.size());
    bool uring_wins = rounds > 0;
    for (std::size_t i = 0; i < rounds; ++i)
        uring_wins = uring_wins && uring_us[i] > 0 && uring_us[i] * 1.10 <= recvmmsg_us[i];
    EngineChoice choice;
    choice.engine = uring_wins ? ReceiveConfig::Engine::io_uring : ReceiveConfig::Engine::recvmmsg;
    choice.why =
        "io_uring " + us_list(uring_us) + " vs recvmmsg " + us_list(recvmmsg_us) + " CPU-us per datagram; " +
        (uring_wins ? "io_uring is 10% or more cheaper in every round" : "io_uring is not 10% cheaper in every round");
    return choice;
}

namespace {

// What a measurement depends on: the kernel, the CPU, and the buffer settings the engines ran with.
std::string machine_key(const ReceiveConfig& config) {
    utsname names{};
    std::string kernel = ::uname(&names) == 0 ? names.release : "unknown";
    std::string cpu = "unknown";
    if (std::FILE* file = std::fopen("/proc/cpuinfo", "r")) {
        char line[256];
        while (std::fgets(line, sizeof line, file) != nullptr) {
            const std::string_view text = line;
            if (!text.starts_with("model name")) continue;
            const auto colon = text.find(':');
            if (colon != std::string_view::npos) {
                cpu = std::string(text.substr(colon + 1));
                while (!cpu.empty() && (cpu.front() == ' ' || cpu.front() == '\t')) cpu.erase(0, 1);
                while (!cpu.empty() && (cpu.back() == '\n' || cpu.back() == ' ')) cpu.pop_back();
            }
            break;
        }
        std::fclose(file);
    }
    return "kernel " + kernel + "; cpu " + cpu + "; cpus " + std::to_string(std::thread::hardware_concurrency()) +
           "; buffers_per_core " + std::to_string(config.buffers_per_core) + "; rcvbuf " +
           std::to_string(std::min(config.rcvbuf_bytes, receive_buffer_cap()));
}

// The choice in `path` if it was measured with `key`; nullopt when absent, stale or unreadable.
std::optional<EngineChoice> read_remembered(const std::string& path, const std::string& key) {
    std::FILE* file = std::fopen(path.c_str(), "r");
    if (file == nullptr) return std::nullopt;
    std::string file_key, engine, why, measured;
    char buffer[1024];
    while (std::fgets(buffer, sizeof buffer, file) != nullptr) {
        std::string line = buffer;
        if (!line.empty() && line.back() == '\n') line.pop_back();
        const auto equals = line.find('=');
        if (line.starts_with("#") || equals == std::string::npos) continue;
        const std::string name = line.substr(0, equals);
        std::string value = line.substr(equals + 1);
        if (name == "key") file_key = std::move(value);
        if (name == "engine") engine = std::move(value);
        if (name == "why") why = std::move(value);
        if (name == "measured") measured = std::move(value);
    }
    std::fclose(file);
    if (file_key != key || why.empty() || measured.empty()) return std::nullopt;
    EngineChoice choice;
    if (engine == "io_uring") {
        choice.engine = ReceiveConfig::Engine::io_uring;
    } else if (engine == "recvmmsg") {
        choice.engine = ReceiveConfig::Engine::recvmmsg;
    } else {
        return std::nullopt;
    }
    choice.why = "auto: measured at " + measured + " on this kernel and CPU, remembered in " + path + ": " + why +
                 " (delete the file to measure again)";
    return choice;
}

void remember(const std::string& path, const std::string& key, const EngineChoice& choice, const std::string& why) {
    const std::string temporary = path + ".tmp";
    std::FILE* file = std::fopen(temporary.c_str(), "w");
    bool ok = file != nullptr;
    if (ok) {
        ok = std::fprintf(
                 file,
                 "# receive.engine = \"auto\": the engine measured cheaper at start, reused while key= matches.\n"
                 "# Delete this file to measure again at the next start.\n"
                 "key=%s\nengine=%s\nwhy=%s\nmeasured=%s\n",
                 key.c_str(), engine_word(choice.engine), why.c_str(), utc_iso8601(std::time(nullptr)).c_str()) > 0;
        ok = std::fclose(file) == 0 && ok;
    }
    if (ok && std::rename(temporary.c_str(), path.c_str()) == 0) return;
    const int error = errno;
    std::remove(temporary.c_str());
    CEFD_LOG(warn, "receive: cannot remember the measured engine in %s (%s); the next start measures again",
             path.c_str(), std::strerror(error));
}

}  // namespace

EngineChoice choose_automatic_engine(const ReceiveConfig& config, const std::string& state_file) {
    EngineChoice fallback;
    if (const Status& probe = probe_uring(); !probe.ok()) {
        fallback.why = "auto: io_uring unusable here (" + probe.error().message + "), so recvmmsg";
        return fallback;
    }
    const std::string key = machine_key(config);
    if (!state_file.empty())
        if (auto remembered = read_remembered(state_file, key)) return *std::move(remembered);
    const std::int64_t started = monotonic_ns();
    constexpr std::uint32_t datagrams = 8'192;  // 32 ms per round at 256k/s
    std::vector<double> uring;
    std::vector<double> recvmmsg;
    std::uint64_t sent = 0;
    std::uint64_t lost = 0;
    for (int round = 0; round < 2; ++round) {
        for (const auto engine : {ReceiveConfig::Engine::io_uring, ReceiveConfig::Engine::recvmmsg}) {
            auto cost = measure_engine(engine, config, datagrams);
            if (!cost) {
                fallback.why = "auto: calibration failed (" + cost.error().describe() + "), so recvmmsg";
                return fallback;
            }
            (engine == ReceiveConfig::Engine::io_uring ? uring : recvmmsg).push_back(cost.value().us_per_datagram());
            sent += cost.value().sent;
            lost += cost.value().lost;
        }
    }
    EngineChoice decided = decide_engine(uring, recvmmsg);
    std::string figures = decided.why;
    // Costs are per datagram written, so drops do not bias them; but they say the buffer is small.
    if (lost != 0)
        figures += "; the calibration's socket lost " + std::to_string(lost) + " of " + std::to_string(sent) +
                   " datagrams (receive.rcvbuf_bytes, capped by net.core.rmem_max)";
    decided.why =
        "auto: measured in " + std::to_string((monotonic_ns() - started) / 1'000'000) + " ms at start: " + figures;
    if (!state_file.empty()) {
        remember(state_file, key, decided, figures);
        decided.why += "; remembered in " + state_file;
    }
    return decided;
}

const EngineChoice& automatic_engine(const ReceiveConfig& config, const std::string& state_file) {
    static const EngineChoice choice = choose_automatic_engine(config, state_file);
    return choice;
}

}  // namespace cefd::receive
