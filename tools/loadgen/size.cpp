#include "tools/loadgen/size.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tools/loadgen/options.h"
#include "tools/loadgen/payload.h"
#include "tools/loadgen/sender.h"
#include "tools/loadgen/verify.h"

namespace cefd::loadgen {
namespace {

constexpr const char* size_usage =
    "usage: cefd-loadgen size --target HOST:PORT [--proto udp|tcp|tls] --metrics URL --verify ROWS.jsonl\n"
    "                         --out DIR [--peak-eps P] [--headroom F] [--hold-s S] [--max-p99-ms MS]\n"
    "                         [--max-rate R] [--file F]\n"
    "  --metrics URL        cefd's Prometheus endpoint, http://127.0.0.1:9514/metrics\n"
    "  --verify ROWS.jsonl  the stand-in's --out (its --accept-log: ROWS.jsonl.accept or --accept-log)\n"
    "  --out DIR            report.md, report.json, sizing.svg\n"
    "  --peak-eps P         your peak events/s: recommends collectors and DCRs\n"
    "  --headroom F         fraction of each collector kept free (default 0.3)\n"
    "  --hold-s S           a rate holds if it holds this long (default 30)\n"
    "  --max-p99-ms MS      latency bound, send to acceptance (default 5000)\n"
    "  --max-rate R         highest rate tried (default 1000000)\n"
    "  --file F             lines to send (default: --payload 853b)\n"
    "  also: --payload samples|853b|templates --seed N --start-rate R (default 1000)\n"
    "        --senders N --flows N --framing newline|octet --cacert F --accept-log F\n"
    "        --pid N (default: the process listening on the target port) --bisect-steps N (default 4)\n"
    "        --drain-s S (after a trial, wait at most this long for the last rows; default 2 x\n"
    "        max-p99 + 5)\n"
    "exit: 0 verdict reached, 1 no verdict (cefd or metrics unreachable), 2 bad usage\n";

struct SizeOptions {
    LoadgenOptions load;
    std::string metrics_url;
    std::string out_dir;
    double peak_eps = 0;
    double headroom = 0.3;
    double hold_s = 30;
    double max_p99_ms = 5000;
    double max_rate = 1'000'000;
    double start_rate = 1'000;
    double drain_s = 0;
    int pid = 0;
    int bisect_steps = 4;
    /// Per-core scaling: cefd is started from this binary and config once per lane count,
    /// with runtime.workers set to it. Empty: size the cefd that is already running.
    std::string cefd_binary;
    std::string cefd_config;
    std::vector<unsigned> lanes;
};

bool parse_double(const std::string& text, double& out, double low, double high) {
    char* end = nullptr;
    out = std::strtod(text.c_str(), &end);
    return !text.empty() && end == text.c_str() + text.size() && out >= low && out <= high;
}

/// Splits size's own flags from the loadgen flags it passes through to parse_options.
bool parse_size_options(int argc, char** argv, SizeOptions& options, std::string& error) {
    std::vector<std::string> passed{"cefd-loadgen"};
    bool have_target = false;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "--help" || flag == "-h") {
            error = "help";
            return false;
        }
        if (i + 1 >= argc) {
            error = "missing value for " + flag;
            return false;
        }
        const std::string value = argv[++i];
        bool ok = true;
        if (flag == "--metrics") options.metrics_url = value;
        else if (flag == "--out") options.out_dir = value;
        else if (flag == "--peak-eps") ok = parse_double(value, options.peak_eps, 1, 1e12);
        else if (flag == "--headroom") ok = parse_double(value, options.headroom, 0, 0.95);
        else if (flag == "--hold-s") ok = parse_double(value, options.hold_s, 0.5, 86'400);
        else if (flag == "--max-p99-ms") ok = parse_double(value, options.max_p99_ms, 1, 3.6e6);
        else if (flag == "--max-rate") ok = parse_double(value, options.max_rate, 1, 1e9);
        else if (flag == "--start-rate") ok = parse_double(value, options.start_rate, 1, 1e9);
        else if (flag == "--drain-s") ok = parse_double(value, options.drain_s, 0.5, 86'400);
        else if (flag == "--pid") {
            double pid = 0;
            ok = parse_double(value, pid, 1, 4'194'304);
            options.pid = static_cast<int>(pid);
        } else if (flag == "--bisect-steps") {
            double steps = 0;
            ok = parse_double(value, steps, 0, 20);
            options.bisect_steps = static_cast<int>(steps);
        } else if (flag == "--cefd") {
            options.cefd_binary = value;
        } else if (flag == "--config") {
            options.cefd_config = value;
        } else if (flag == "--lanes") {
            // "1,2,4"
            std::size_t start = 0;
            while (ok && start <= value.size()) {
                const std::size_t comma = std::min(value.find(',', start), value.size());
                double lanes = 0;
                ok = parse_double(value.substr(start, comma - start), lanes, 1, 256) && lanes == std::floor(lanes);
                if (ok) options.lanes.push_back(static_cast<unsigned>(lanes));
                start = comma + 1;
            }
        } else if (flag == "--target" || flag == "--proto" || flag == "--file" || flag == "--payload" ||
                   flag == "--seed" || flag == "--senders" || flag == "--flows" || flag == "--framing" ||
                   flag == "--cacert" || flag == "--accept-log" || flag == "--verify") {
            have_target = have_target || flag == "--target";
            passed.push_back(flag);
            passed.push_back(value);
        } else {
            error = "unknown flag " + flag;
            return false;
        }
        if (!ok) {
            error = "bad value '" + value + "' for " + flag;
            return false;
        }
    }
    std::vector<char*> pointers;
    for (std::string& text : passed) pointers.push_back(text.data());
    bool help = false;
    if (!parse_options(static_cast<int>(pointers.size()), pointers.data(), options.load, error, help)) return false;
    if (!have_target || options.metrics_url.empty() || options.load.verify_path.empty() || options.out_dir.empty()) {
        error = "size needs --target, --metrics, --verify and --out";
        return false;
    }
    if (options.cefd_binary.empty() != options.cefd_config.empty()) {
        error = "--cefd and --config go together";
        return false;
    }
    if (!options.cefd_binary.empty() && options.lanes.empty()) {
        for (unsigned k = 1; k <= std::max(1U, std::thread::hardware_concurrency()); ++k) options.lanes.push_back(k);
    }
    if (options.cefd_binary.empty() && !options.lanes.empty()) {
        error = "--lanes needs --cefd BIN --config FILE";
        return false;
    }
    if (options.metrics_url.rfind("http://", 0) != 0) {
        error = "--metrics must be an http:// URL";
        return false;
    }
    if (options.start_rate > options.max_rate) options.start_rate = options.max_rate;
    if (options.drain_s == 0) options.drain_s = 2 * options.max_p99_ms / 1000 + 5;
    // 853-byte model breaches unless told otherwise: the size real fleets send.
    bool payload_given = false;
    for (const std::string& text : passed) payload_given = payload_given || text == "--payload" || text == "--file";
    if (!payload_given) options.load.payload = LoadgenOptions::Payload::breach_853b;
    // Many UDP source ports by default, so SO_REUSEPORT spreads them over every lane.
    bool flows_given = false;
    for (const std::string& text : passed) flows_given = flows_given || text == "--flows";
    if (!flows_given) {
        options.load.flows = std::max<std::uint32_t>(
            options.load.senders, options.load.proto == LoadgenOptions::Proto::udp ? 16 : 4);
    }
    options.load.stamp = true;
    options.load.stamp_time = true;
    return true;
}

// ---- cefd's /metrics -------------------------------------------------------------------------

/// GET over plain HTTP/1.0 (cefd's exporter is loopback HTTP); empty on failure.
std::string http_get(const std::string& url) {
    const std::string rest = url.substr(7);
    const std::size_t slash = rest.find('/');
    const std::string authority = rest.substr(0, slash);
    const std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
    const std::size_t colon = authority.rfind(':');
    std::string host = authority.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    const std::string port = colon == std::string::npos ? "80" : authority.substr(colon + 1);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return {};
    int fd = -1;
    for (const addrinfo* info = found; info != nullptr && fd < 0; info = info->ai_next) {
        fd = ::socket(info->ai_family, info->ai_socktype | SOCK_CLOEXEC, info->ai_protocol);
        if (fd >= 0 && ::connect(fd, info->ai_addr, info->ai_addrlen) != 0) {
            ::close(fd);
            fd = -1;
        }
    }
    ::freeaddrinfo(found);
    if (fd < 0) return {};
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: " + authority + "\r\nConnection: close\r\n\r\n";
    std::string response;
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
        char buffer[65'536];
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (std::chrono::steady_clock::now() < deadline) {
            pollfd waiting{fd, POLLIN, 0};
            if (::poll(&waiting, 1, 200) <= 0) continue;
            const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
            if (got <= 0) break;
            response.append(buffer, static_cast<std::size_t>(got));
        }
    }
    ::close(fd);
    const std::size_t body = response.find("\r\n\r\n");
    if (response.rfind("HTTP/1.", 0) != 0 || response.find(" 200") > 12 || body == std::string::npos) return {};
    return response.substr(body + 4);
}

/// Prometheus text format: "name{labels} value [timestamp]" per line; values of one name are
/// summed over its label sets. Comments and lines that do not parse are skipped.
std::map<std::string, double, std::less<>> parse_metrics(std::string_view text) {
    std::map<std::string, double, std::less<>> sums;
    while (!text.empty()) {
        const std::size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        if (line.empty() || line.front() == '#') continue;
        std::size_t name_end = line.find_first_of("{ \t");
        if (name_end == std::string_view::npos) continue;
        const std::string_view name = line.substr(0, name_end);
        std::size_t value_at = name_end;
        if (line[name_end] == '{') {
            // Label values may hold '}' inside quotes.
            bool quoted = false;
            std::size_t at = name_end + 1;
            for (; at < line.size(); ++at) {
                if (line[at] == '\\' && quoted) ++at;
                else if (line[at] == '"') quoted = !quoted;
                else if (line[at] == '}' && !quoted) break;
            }
            if (at >= line.size()) continue;
            value_at = at + 1;
        }
        while (value_at < line.size() && (line[value_at] == ' ' || line[value_at] == '\t')) ++value_at;
        const std::string value(line.substr(value_at, line.find_first_of(" \t", value_at) - value_at));
        char* parsed_end = nullptr;
        const double number = std::strtod(value.c_str(), &parsed_end);
        if (value.empty() || parsed_end != value.c_str() + value.size() || !std::isfinite(number)) continue;
        sums[std::string(name)] += number;
    }
    return sums;
}

struct Scrape {
    bool ok = false;
    double delivered_rows = 0;
    double delivered_batches = 0;
    double ring_used_bytes = 0;
    double spool_pending_batches = 0;
    double lanes = 0;
};

Scrape scrape(const std::string& url) {
    const std::string text = http_get(url);
    Scrape result;
    if (text.empty()) return result;
    const auto sums = parse_metrics(text);
    const auto value = [&](std::string_view name) {
        const auto found = sums.find(name);
        return found == sums.end() ? 0.0 : found->second;
    };
    result.ok = sums.contains("cefd_send_delivered_rows_total");
    result.delivered_rows = value("cefd_send_delivered_rows_total");
    result.delivered_batches = value("cefd_send_delivered_batches_total");
    result.ring_used_bytes = value("cefd_ring_used_bytes");
    result.spool_pending_batches = value("cefd_spool_pending_batches");
    // One cefd_ring_used_bytes series per lane.
    for (std::size_t at = text.find("\ncefd_ring_used_bytes"); at != std::string::npos;
         at = text.find("\ncefd_ring_used_bytes", at + 1)) {
        result.lanes += 1;
    }
    return result;
}

// ---- cefd's process ---------------------------------------------------------------------------

/// The socket inode listening on `port` in /proc/net/<table> (udp: any bound socket; tcp: LISTEN).
std::string listening_inode(const char* table, int port, bool tcp) {
    std::ifstream in(std::string("/proc/net/") + table);
    std::string line;
    std::getline(in, line);  // header
    char wanted[8];
    std::snprintf(wanted, sizeof wanted, ":%04X", port);
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
        fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
        if (local.size() < 5 || local.substr(local.size() - 5) != wanted) continue;
        if (tcp && state != "0A") continue;
        if (inode != "0") return inode;
    }
    return {};
}

/// The process holding the socket that listens on the target port (cefd), or 0.
int find_listener_pid(int port, bool tcp) {
    std::string inode;
    for (const char* table : tcp ? std::vector<const char*>{"tcp", "tcp6"} : std::vector<const char*>{"udp", "udp6"}) {
        inode = listening_inode(table, port, tcp);
        if (!inode.empty()) break;
    }
    if (inode.empty()) return 0;
    const std::string link = "socket:[" + inode + "]";
    DIR* processes = ::opendir("/proc");
    if (processes == nullptr) return 0;
    int found = 0;
    while (const dirent* entry = ::readdir(processes)) {
        const int pid = std::atoi(entry->d_name);
        if (pid <= 0 || pid == ::getpid()) continue;
        const std::string fd_dir = "/proc/" + std::string(entry->d_name) + "/fd";
        DIR* fds = ::opendir(fd_dir.c_str());
        if (fds == nullptr) continue;
        while (const dirent* fd = ::readdir(fds)) {
            char target[64];
            const ssize_t length = ::readlink((fd_dir + "/" + fd->d_name).c_str(), target, sizeof target - 1);
            if (length > 0 && std::string_view(target, static_cast<std::size_t>(length)) == link) {
                found = pid;
                break;
            }
        }
        ::closedir(fds);
        if (found != 0) break;
    }
    ::closedir(processes);
    return found;
}

/// utime + stime of `pid` in seconds (-1 if it is gone).
double process_cpu_s(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::size_t name_end = text.rfind(')');  // the command name may hold spaces
    if (name_end == std::string::npos) return -1;
    std::istringstream fields(text.substr(name_end + 2));
    std::string field;
    double utime = 0;
    double stime = 0;
    // Fields 3..13 come first (state .. cmajflt), then utime (14) and stime (15).
    for (int i = 3; i <= 15 && fields >> field; ++i) {
        if (i == 14) utime = std::atof(field.c_str());
        if (i == 15) stime = std::atof(field.c_str());
    }
    return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

/// VmHWM (peak resident set) of `pid` in MiB.
double peak_rss_mib(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
    }
    return 0;
}

// ---- trials ----------------------------------------------------------------------------------

struct Trial {
    double target_eps = 0;
    double hold_s = 0;
    std::string phase;  // "ramp", "bisect"
    std::uint64_t sent = 0;
    double offered_eps = 0;
    std::uint64_t delivered = 0;
    std::uint64_t lost = 0;
    std::uint64_t duplicated = 0;
    double delivered_eps = 0;
    double loss_pct = 0;
    double p50_ms = 0;
    double p99_ms = 0;
    double max_ms = 0;
    double cefd_cpu_us_per_event = 0;
    double loadgen_cpu_us_per_event = 0;
    double backlog_start = 0;  // ring bytes / 64 KiB + spool batches, a third of the way in
    double backlog_end = 0;
    double peak_rss_mib = 0;
    double json_bytes_per_row = 0;
    double rows_per_request = 0;
    bool held = false;
    std::string why;  // the first reason it did not hold
};

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
        {
            std::jthread sender([&] { sent = send_events(load, lines_, progress); });
            // Backlog a third of the way in and at the end of the send: growing = not keeping up.
            const auto start = std::chrono::steady_clock::now();
            const auto third = start + std::chrono::duration<double>(hold_s / 3);
            while (std::chrono::steady_clock::now() < third) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                tracker_.poll();
            }
            trial.backlog_start = backlog(scrape(options_.metrics_url));
        }  // joins the sender
        trial.backlog_end = backlog(scrape(options_.metrics_url));
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

        // The first reason wins; the order is the operator's: loss, then backlog, then latency.
        if (trial.lost > 0) trial.why = "loss";
        else if (trial.backlog_end > 2 * trial.backlog_start + 16) trial.why = "backlog growing";
        else if (report.latency_samples == 0) trial.why = "no latency (is --accept-log on?)";
        else if (trial.p99_ms > options_.max_p99_ms) trial.why = "p99 over bound";
        else if (trial.offered_eps < 0.95 * rate) trial.why = "generator below the rate";
        trial.held = trial.why.empty();
        std::fprintf(stderr,
                     "cefd-loadgen size: %s %.0f/s for %.0f s: offered %.0f, delivered %llu/%llu, p99 %.1f ms, "
                     "cefd %.2f CPU-us/event, backlog %.0f->%.0f: %s\n",
                     phase, rate, hold_s, trial.offered_eps, static_cast<unsigned long long>(trial.delivered),
                     static_cast<unsigned long long>(trial.sent), trial.p99_ms, trial.cefd_cpu_us_per_event,
                     trial.backlog_start, trial.backlog_end, trial.held ? "held" : trial.why.c_str());
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

// ---- the report ------------------------------------------------------------------------------

std::string fixed(double value, int decimals) {
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", decimals, value);
    return text;
}

struct Verdict {
    bool reached = false;
    double max_zero_loss_eps = 0;
    bool at_max_rate = false;  // every rate up to --max-rate held: the verdict is a lower bound
    const Trial* best = nullptr;
    double cpu_us_per_event = 0;
    double p99_ms = 0;
    double peak_rss_mib = 0;
    double json_bytes_per_row = 0;
    double rows_per_request = 0;
    // --peak-eps
    double capacity_per_collector = 0;
    int collectors_needed = 0;
    double dcr_bytes_per_min = 0;
    double dcr_requests_per_min = 0;
    int dcrs_by_bytes = 0;
    int dcrs_by_requests = 0;
    int dcrs_needed = 0;
};

constexpr double dcr_bytes_per_min_limit = 2e9;  // "2 GB/min", read as 10^9 bytes (the lower reading)
constexpr double dcr_requests_per_min_limit = 12'000;

Verdict decide(const SizeOptions& options, const std::vector<Trial>& trials) {
    Verdict verdict;
    for (const Trial& trial : trials) {
        // Only full-length trials count for the verdict; ramp steps are shorter than --hold-s.
        if (!trial.held || trial.hold_s < options.hold_s) continue;
        if (verdict.best == nullptr || trial.target_eps > verdict.best->target_eps) verdict.best = &trial;
    }
    verdict.reached = true;
    if (verdict.best != nullptr) {
        verdict.max_zero_loss_eps = verdict.best->target_eps;
        verdict.at_max_rate = verdict.best->target_eps >= options.max_rate;
        verdict.cpu_us_per_event = verdict.best->cefd_cpu_us_per_event;
        verdict.p99_ms = verdict.best->p99_ms;
        verdict.json_bytes_per_row = verdict.best->json_bytes_per_row;
        verdict.rows_per_request = verdict.best->rows_per_request;
    }
    for (const Trial& trial : trials) verdict.peak_rss_mib = std::max(verdict.peak_rss_mib, trial.peak_rss_mib);
    if (options.peak_eps > 0 && verdict.max_zero_loss_eps > 0) {
        verdict.capacity_per_collector = verdict.max_zero_loss_eps * (1 - options.headroom);
        verdict.collectors_needed = static_cast<int>(std::ceil(options.peak_eps / verdict.capacity_per_collector));
        verdict.dcr_bytes_per_min = options.peak_eps * verdict.json_bytes_per_row * 60;
        verdict.dcr_requests_per_min =
            verdict.rows_per_request > 0 ? options.peak_eps / verdict.rows_per_request * 60 : 0;
        verdict.dcrs_by_bytes = static_cast<int>(std::ceil(verdict.dcr_bytes_per_min / dcr_bytes_per_min_limit));
        verdict.dcrs_by_requests =
            static_cast<int>(std::ceil(verdict.dcr_requests_per_min / dcr_requests_per_min_limit));
        verdict.dcrs_needed = std::max({1, verdict.dcrs_by_bytes, verdict.dcrs_by_requests});
    }
    return verdict;
}

std::string trial_json(const Trial& t) {
    return "{\"phase\":\"" + t.phase + "\",\"target_eps\":" + fixed(t.target_eps, 0) + ",\"hold_s\":" +
           fixed(t.hold_s, 1) + ",\"sent\":" + std::to_string(t.sent) + ",\"offered_eps\":" + fixed(t.offered_eps, 0) +
           ",\"delivered\":" + std::to_string(t.delivered) + ",\"delivered_eps\":" + fixed(t.delivered_eps, 0) +
           ",\"lost\":" + std::to_string(t.lost) + ",\"duplicated\":" + std::to_string(t.duplicated) +
           ",\"loss_pct\":" + fixed(t.loss_pct, 3) + ",\"p50_ms\":" + fixed(t.p50_ms, 2) + ",\"p99_ms\":" +
           fixed(t.p99_ms, 2) + ",\"max_ms\":" + fixed(t.max_ms, 2) + ",\"cefd_cpu_us_per_event\":" +
           fixed(t.cefd_cpu_us_per_event, 3) + ",\"loadgen_cpu_us_per_event\":" + fixed(t.loadgen_cpu_us_per_event, 3) +
           ",\"backlog_start\":" + fixed(t.backlog_start, 1) + ",\"backlog_end\":" + fixed(t.backlog_end, 1) +
           ",\"peak_rss_mib\":" + fixed(t.peak_rss_mib, 1) + ",\"held\":" + (t.held ? "true" : "false") +
           ",\"why\":\"" + t.why + "\"}";
}

std::string report_json(const SizeOptions& options, const std::vector<Trial>& trials, const Verdict& v,
                        double bytes_per_event, double lanes) {
    std::string json = "{\"max_zero_loss_eps\":" + fixed(v.max_zero_loss_eps, 0) +
                       ",\"at_max_rate\":" + (v.at_max_rate ? "true" : "false") +
                       ",\"cpu_us_per_event\":" + fixed(v.cpu_us_per_event, 3) + ",\"p99_ms\":" + fixed(v.p99_ms, 2) +
                       ",\"peak_rss_mib\":" + fixed(v.peak_rss_mib, 1) + ",\"hold_s\":" + fixed(options.hold_s, 1) +
                       ",\"max_p99_ms\":" + fixed(options.max_p99_ms, 0) + ",\"bytes_per_event\":" +
                       fixed(bytes_per_event, 0) + ",\"json_bytes_per_row\":" + fixed(v.json_bytes_per_row, 0) +
                       ",\"rows_per_request\":" + fixed(v.rows_per_request, 0) + ",\"lanes\":" + fixed(lanes, 0) +
                       ",\"cores\":" + std::to_string(std::thread::hardware_concurrency());
    if (options.peak_eps > 0) {
        json += ",\"peak_eps\":" + fixed(options.peak_eps, 0) + ",\"headroom\":" + fixed(options.headroom, 2) +
                ",\"capacity_per_collector_eps\":" + fixed(v.capacity_per_collector, 0) +
                ",\"collectors_needed\":" + std::to_string(v.collectors_needed) +
                ",\"dcr_bytes_per_min\":" + fixed(v.dcr_bytes_per_min, 0) +
                ",\"dcr_requests_per_min\":" + fixed(v.dcr_requests_per_min, 0) +
                ",\"dcrs_by_bytes\":" + std::to_string(v.dcrs_by_bytes) +
                ",\"dcrs_by_requests\":" + std::to_string(v.dcrs_by_requests) +
                ",\"dcrs_needed\":" + std::to_string(v.dcrs_needed);
    } else {
        json += ",\"collectors_needed\":null,\"dcrs_needed\":null";
    }
    json += ",\"trials\":[";
    for (std::size_t i = 0; i < trials.size(); ++i) json += (i == 0 ? "" : ",") + trial_json(trials[i]);
    return json + "]}\n";
}

std::string report_markdown(const SizeOptions& options, const std::vector<Trial>& trials, const Verdict& v,
                            double bytes_per_event, double lanes, const std::string& scaling_md) {
    std::string md = "# cefd sizing report\n\n";
    const unsigned cores = std::thread::hardware_concurrency();
    md += "Target " + options.load.host + ":" + std::to_string(options.load.port) + ", " +
          fixed(bytes_per_event, 0) + "-byte events on average, " + fixed(lanes, 0) + " cefd lane(s) on a " +
          std::to_string(cores) + "-core machine. A rate holds when nothing is lost, the backlog does not grow, " +
          "p99 from send to acceptance is at most " + fixed(options.max_p99_ms, 0) +
          " ms and the generator offered at least 95% of it, for " + fixed(options.hold_s, 0) + " s.\n\n";
    md += "## Verdict\n\n";
    if (v.best == nullptr) {
        md += "No rate held for " + fixed(options.hold_s, 0) + " s (the lowest tried was " +
              fixed(options.start_rate, 0) + "/s); see the trials.\n\n";
    } else {
        md += "This collector holds **" + fixed(v.max_zero_loss_eps, 0) + " events/s" +
              (v.at_max_rate ? " or more (--max-rate)" : "") + "** with zero loss, at p99 " + fixed(v.p99_ms, 1) +
              " ms end to end and " + fixed(v.cpu_us_per_event, 2) + " cefd CPU-µs per event; peak RSS " +
              fixed(v.peak_rss_mib, 0) + " MiB.\n\n";
    }
    if (options.peak_eps > 0 && v.best != nullptr) {
        md += "## For a peak of " + fixed(options.peak_eps, 0) + " events/s\n\n";
        md += "| quantity | arithmetic | value |\n|---|---|---|\n";
        md += "| capacity per collector | " + fixed(v.max_zero_loss_eps, 0) + " x (1 - " + fixed(options.headroom, 2) +
              " headroom) | " + fixed(v.capacity_per_collector, 0) + " events/s |\n";
        md += "| collectors (" + std::to_string(cores) + " cores each, like this one) | ceil(" +
              fixed(options.peak_eps, 0) + " / " + fixed(v.capacity_per_collector, 0) + ") | **" +
              std::to_string(v.collectors_needed) + "** |\n";
        md += "| JSON bytes per minute | " + fixed(options.peak_eps, 0) + " x " + fixed(v.json_bytes_per_row, 0) +
              " B/row x 60 | " + fixed(v.dcr_bytes_per_min / 1e9, 3) + " GB/min |\n";
        md += "| DCRs by bytes | ceil(" + fixed(v.dcr_bytes_per_min / 1e9, 3) + " / 2 GB/min) | " +
              std::to_string(v.dcrs_by_bytes) + " |\n";
        md += "| requests per minute | " + fixed(options.peak_eps, 0) + " / " + fixed(v.rows_per_request, 0) +
              " rows/request x 60 | " + fixed(v.dcr_requests_per_min, 0) + " |\n";
        md += "| DCRs by requests | ceil(" + fixed(v.dcr_requests_per_min, 0) + " / 12,000 per min) | " +
              std::to_string(v.dcrs_by_requests) + " |\n";
        md += "| DCRs | max(1, by bytes, by requests) | **" + std::to_string(v.dcrs_needed) + "** |\n\n";
        md += "Per-DCR limits: 2 GB/min and 12,000 requests/min, from the project's Azure contract "
              "(`azure-logs-ingestion.md`, section 1.5 \"Limits (per DCR unless stated)\"; GB read as 10^9 "
              "bytes, the lower reading). Bytes are the uncompressed JSON rows the stand-in stored (the limit "
              "is stated for compressed and uncompressed data alike).\n\n";
    }
    md += scaling_md;
    md += "## Trials\n\n";
    md += "| phase | target/s | hold s | offered/s | delivered/s | lost | dup | p50 ms | p99 ms | max ms | cefd "
          "CPU-µs/event | loadgen CPU-µs/event | backlog | RSS MiB | verdict |\n";
    md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const Trial& t : trials) {
        md += "| " + t.phase + " | " + fixed(t.target_eps, 0) + " | " + fixed(t.hold_s, 1) + " | " +
              fixed(t.offered_eps, 0) + " | " + fixed(t.delivered_eps, 0) + " | " + std::to_string(t.lost) + " | " +
              std::to_string(t.duplicated) + " | " + fixed(t.p50_ms, 1) + " | " + fixed(t.p99_ms, 1) + " | " +
              fixed(t.max_ms, 1) + " | " + fixed(t.cefd_cpu_us_per_event, 2) + " | " +
              fixed(t.loadgen_cpu_us_per_event, 2) + " | " + fixed(t.backlog_start, 0) + " -> " +
              fixed(t.backlog_end, 0) + " | " + fixed(t.peak_rss_mib, 0) + " | " + (t.held ? "held" : t.why) + " |\n";
    }
    md += "\nBacklog: spool batches pending + ring bytes / 64 KiB, a third of the way into the trial and at its "
          "end. cefd CPU per event: utime + stime of the cefd process from the start of a trial until its rows "
          "arrived, over the rows delivered (cefd_send_delivered_rows_total). loadgen CPU per event: the "
          "generator's own; when it nears 1e6 / rate per sender thread, the generator is the limit.\n\n"
          "![sizing chart](sizing.svg)\n";
    return md;
}

/// Four panels against the offered rate: offered and delivered events/s, loss %, cefd CPU-µs per
/// event, p99 ms. Plain SVG 1.1, no script, no external font.
std::string sizing_svg(const std::vector<Trial>& input, const Verdict& verdict, double max_p99_ms) {
    std::vector<const Trial*> trials;
    for (const Trial& t : input) trials.push_back(&t);
    std::sort(trials.begin(), trials.end(), [](const Trial* a, const Trial* b) { return a->target_eps < b->target_eps; });
    const double width = 760, panel_height = 150, left = 80, right = 20, top = 40, gap = 45;
    const double height = top + 4 * (panel_height + gap) + 10;
    double x_max = 1;
    for (const Trial* t : trials) x_max = std::max({x_max, t->target_eps, t->offered_eps});
    x_max *= 1.05;
    const auto x_of = [&](double x) { return left + (width - left - right) * x / x_max; };
    std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fixed(width, 0) + "\" height=\"" +
                      fixed(height, 0) + "\" font-family=\"sans-serif\" font-size=\"11\">\n";
    svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    svg += "<text x=\"" + fixed(left, 0) + "\" y=\"22\" font-size=\"14\">cefd sizing: verdict " +
           fixed(verdict.max_zero_loss_eps, 0) + " events/s (dashed line), against the offered rate</text>\n";
    struct Series {
        const char* label;
        const char* colour;
        double (*value)(const Trial&);
    };
    struct Panel {
        const char* title;
        std::vector<Series> series;
        double bound;  // a horizontal dashed line (0: none)
    };
    const std::vector<Panel> panels{
        {"events/s: offered (grey) and delivered (blue)",
         {{"offered", "#888888", [](const Trial& t) { return t.offered_eps; }},
          {"delivered", "#1f77b4", [](const Trial& t) { return t.delivered_eps; }}},
         0},
        {"loss %", {{"loss", "#d62728", [](const Trial& t) { return t.loss_pct; }}}, 0},
        {"cefd CPU-µs per event (green), loadgen's (grey)",
         {{"cefd", "#2ca02c", [](const Trial& t) { return t.cefd_cpu_us_per_event; }},
          {"loadgen", "#888888", [](const Trial& t) { return t.loadgen_cpu_us_per_event; }}},
         0},
        {"p99 ms, send to acceptance (bound dashed)",
         {{"p99", "#9467bd", [](const Trial& t) { return t.p99_ms; }}},
         max_p99_ms},
    };
    for (std::size_t p = 0; p < panels.size(); ++p) {
        const Panel& panel = panels[p];
        const double y0 = top + static_cast<double>(p) * (panel_height + gap) + 15;
        double y_max = panel.bound * 1.1;
        for (const Series& series : panel.series) {
            for (const Trial* t : trials) y_max = std::max(y_max, series.value(*t));
        }
        if (y_max <= 0) y_max = 1;
        y_max *= 1.1;
        const auto y_of = [&](double y) { return y0 + panel_height - panel_height * y / y_max; };
        svg += "<text x=\"" + fixed(left, 0) + "\" y=\"" + fixed(y0 - 4, 0) + "\">" + panel.title + "</text>\n";
        svg += "<rect x=\"" + fixed(left, 0) + "\" y=\"" + fixed(y0, 0) + "\" width=\"" + fixed(width - left - right, 0) +
               "\" height=\"" + fixed(panel_height, 0) + "\" fill=\"none\" stroke=\"#444\"/>\n";
        for (int tick = 0; tick <= 4; ++tick) {
            const double y = y_max * tick / 4;
            svg += "<text x=\"" + fixed(left - 6, 0) + "\" y=\"" + fixed(y_of(y) + 4, 0) + "\" text-anchor=\"end\">" +
                   fixed(y, y_max < 10 ? 2 : 0) + "</text>\n";
            const double x = x_max * tick / 4;
            svg += "<text x=\"" + fixed(x_of(x), 0) + "\" y=\"" + fixed(y0 + panel_height + 14, 0) +
                   "\" text-anchor=\"middle\">" + fixed(x, 0) + "/s</text>\n";
        }
        if (panel.bound > 0) {
            svg += "<line x1=\"" + fixed(left, 0) + "\" x2=\"" + fixed(width - right, 0) + "\" y1=\"" +
                   fixed(y_of(panel.bound), 1) + "\" y2=\"" + fixed(y_of(panel.bound), 1) +
                   "\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/>\n";
        }
        if (verdict.max_zero_loss_eps > 0) {
            const double x = x_of(verdict.max_zero_loss_eps);
            svg += "<line x1=\"" + fixed(x, 1) + "\" x2=\"" + fixed(x, 1) + "\" y1=\"" + fixed(y0, 0) + "\" y2=\"" +
                   fixed(y0 + panel_height, 0) + "\" stroke=\"#000\" stroke-dasharray=\"6 4\"/>\n";
        }
        for (const Series& series : panel.series) {
            std::string points;
            for (const Trial* t : trials) {
                points += fixed(x_of(t->target_eps), 1) + "," + fixed(y_of(series.value(*t)), 1) + " ";
            }
            svg += "<polyline fill=\"none\" stroke=\"" + std::string(series.colour) + "\" stroke-width=\"1.5\" points=\"" +
                   points + "\"/>\n";
            for (const Trial* t : trials) {
                // Filled: the trial held; hollow: it did not.
                svg += "<circle cx=\"" + fixed(x_of(t->target_eps), 1) + "\" cy=\"" + fixed(y_of(series.value(*t)), 1) +
                       "\" r=\"3\" stroke=\"" + series.colour + "\" fill=\"" + (t->held ? series.colour : "white") +
                       "\"/>\n";
            }
        }
    }
    return svg + "</svg>\n";
}

bool write_text(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    return static_cast<bool>(out);
}

/// Ramp, then confirm and bisect with full-length trials (see size.h).
std::vector<Trial> search(const SizeOptions& options, const std::vector<std::string>& lines, int pid) {
    Sizer sizer(options, lines, pid);
    std::vector<Trial> trials;
    // 1. Ramp: double until a step fails or --max-rate holds.
    const double ramp_hold_s = std::min(options.hold_s, std::max(2.0, options.hold_s / 4));
    double held = 0;
    double failed = 0;
    for (double rate = options.start_rate;; rate = std::min(rate * 2, options.max_rate)) {
        trials.push_back(sizer.run_trial(rate, ramp_hold_s, "ramp"));
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
/// the new one written right after the table header; no [runtime] table: one is appended.
/// Line-based, which is enough for cefd's own configs (no inline tables for [runtime]).
std::string config_with_lanes(const std::string& text, unsigned lanes) {
    std::istringstream in(text);
    std::string line;
    std::string out;
    std::string table;
    bool written = false;
    const std::string key = "workers = " + std::to_string(lanes) + "\n";
    while (std::getline(in, line)) {
        std::string trimmed = line.substr(0, line.find('#'));
        trimmed.erase(0, std::min(trimmed.size(), trimmed.find_first_not_of(" \t")));
        if (!trimmed.empty() && trimmed.front() == '[') {
            table = trimmed.substr(0, trimmed.find(']') + 1);
        } else if (table == "[runtime]" && trimmed.rfind("workers", 0) == 0) {
            const std::size_t after = trimmed.find_first_not_of(" \t", 7);
            if (after != std::string::npos && trimmed[after] == '=') continue;  // replaced
        }
        out += line + "\n";
        if (!trimmed.empty() && trimmed.front() == '[' && table == "[runtime]") {
            out += key;
            written = true;
        }
    }
    if (!written) out += "\n[runtime]\n" + key;
    return out;
}

/// A cefd started by `size` for one lane count; SIGTERM and wait on destruction.
class CefdChild {
public:
    CefdChild(const SizeOptions& options, unsigned lanes, std::string& error) {
        std::ifstream in(options.cefd_config, std::ios::binary);
        if (!in) {
            error = "cannot read --config " + options.cefd_config;
            return;
        }
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const std::string path = options.out_dir + "/cefd-lanes-" + std::to_string(lanes) + ".toml";
        {
            // 0600: cefd refuses a config that other users can read.
            const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            const std::string copy = config_with_lanes(text, lanes);
            const bool ok = fd >= 0 && ::write(fd, copy.data(), copy.size()) == static_cast<ssize_t>(copy.size());
            if (fd >= 0) ::close(fd);
            if (!ok) {
                error = "cannot write " + path;
                return;
            }
        }
        const std::string log = options.out_dir + "/cefd-lanes-" + std::to_string(lanes) + ".log";
        pid_ = ::fork();
        if (pid_ == 0) {
            const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                ::dup2(fd, 1);
                ::dup2(fd, 2);
            }
            ::execl(options.cefd_binary.c_str(), options.cefd_binary.c_str(), "run", "--config", path.c_str(),
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
        if (pid_ < 0) {
            error = std::string("fork: ") + std::strerror(errno);
            return;
        }
        // Ready when its metrics answer (its receivers are open by then).
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                error = "cefd exited at start; see " + log;
                return;
            }
            if (scrape(options.metrics_url).ok) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        error = "cefd's metrics never answered at " + options.metrics_url + "; see " + log;
    }
    ~CefdChild() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
    CefdChild(const CefdChild&) = delete;
    CefdChild& operator=(const CefdChild&) = delete;
    [[nodiscard]] int pid() const noexcept { return pid_; }

private:
    int pid_ = -1;
};

struct LaneResult {
    unsigned lanes = 0;
    double max_zero_loss_eps = 0;
    double cpu_us_per_event = 0;
    double p99_ms = 0;
};

}  // namespace

int run_size(int argc, char** argv) {
    SizeOptions options;
    std::string error;
    if (!parse_size_options(argc, argv, options, error)) {
        if (error == "help") {
            std::fputs(size_usage, stdout);
            return 0;
        }
        std::fprintf(stderr, "cefd-loadgen size: %s\n%s", error.c_str(), size_usage);
        return 2;
    }
    std::vector<std::string> lines = payload_lines(options.load, error);
    if (lines.empty()) {
        std::fprintf(stderr, "cefd-loadgen size: %s\n", error.c_str());
        return 2;
    }
    double bytes_per_event = 0;
    for (const std::string& line : lines) bytes_per_event += static_cast<double>(line.size());
    bytes_per_event /= static_cast<double>(lines.size());
    if (::mkdir(options.out_dir.c_str(), 0755) != 0 && errno != EEXIST) {
        std::fprintf(stderr, "cefd-loadgen size: cannot create --out %s: %s\n", options.out_dir.c_str(), std::strerror(errno));
        return 2;
    }

    std::vector<Trial> trials;
    std::vector<LaneResult> scaling;
    double lanes_seen = 0;
    if (options.cefd_binary.empty()) {
        const Scrape first = scrape(options.metrics_url);
        if (!first.ok) {
            std::fprintf(stderr, "cefd-loadgen size: no cefd_send_delivered_rows_total at %s\n", options.metrics_url.c_str());
            return 1;
        }
        lanes_seen = first.lanes;
        const bool tcp = options.load.proto != LoadgenOptions::Proto::udp;
        const int pid = options.pid != 0 ? options.pid : find_listener_pid(options.load.port, tcp);
        if (pid == 0 || process_cpu_s(pid) < 0) {
            std::fprintf(stderr, "cefd-loadgen size: no process listens on port %u (give --pid)\n", options.load.port);
            return 1;
        }
        trials = search(options, lines, pid);
    } else {
        // Per-core scaling: one search per lane count; the report's verdict is the last one's.
        error.clear();
        for (const unsigned lanes : options.lanes) {
            CefdChild cefd(options, lanes, error);
            if (!error.empty()) {
                std::fprintf(stderr, "cefd-loadgen size: %s\n", error.c_str());
                return 1;
            }
            std::fprintf(stderr, "cefd-loadgen size: cefd with %u lane(s), pid %d\n", lanes, cefd.pid());
            trials = search(options, lines, cefd.pid());
            lanes_seen = scrape(options.metrics_url).lanes;
            const Verdict one = decide(options, trials);
            scaling.push_back({.lanes = lanes, .max_zero_loss_eps = one.max_zero_loss_eps,
                               .cpu_us_per_event = one.cpu_us_per_event, .p99_ms = one.p99_ms});
        }
    }
    const Verdict verdict = decide(options, trials);
    std::string json = report_json(options, trials, verdict, bytes_per_event, lanes_seen);
    std::string scaling_md;
    if (!scaling.empty()) {
        // Scaling factor: each lane count's verdict over the first one's.
        std::string entries;
        scaling_md = "## Per-core scaling\n\ncefd restarted with `runtime.workers` = k; the verdict above is the last "
                     "row's.\n\n| lanes | max zero-loss events/s | scaling vs first | cefd CPU-µs/event | p99 ms |\n"
                     "|---|---|---|---|---|\n";
        for (const LaneResult& row : scaling) {
            const double factor = scaling.front().max_zero_loss_eps > 0
                                      ? row.max_zero_loss_eps / scaling.front().max_zero_loss_eps
                                      : 0;
            entries += std::string(entries.empty() ? "" : ",") + "{\"lanes\":" + std::to_string(row.lanes) +
                       ",\"max_zero_loss_eps\":" + fixed(row.max_zero_loss_eps, 0) + ",\"scaling\":" +
                       fixed(factor, 2) + ",\"cpu_us_per_event\":" + fixed(row.cpu_us_per_event, 3) +
                       ",\"p99_ms\":" + fixed(row.p99_ms, 2) + "}";
            scaling_md += "| " + std::to_string(row.lanes) + " | " + fixed(row.max_zero_loss_eps, 0) + " | " +
                          fixed(factor, 2) + "x | " + fixed(row.cpu_us_per_event, 2) + " | " + fixed(row.p99_ms, 1) +
                          " |\n";
        }
        scaling_md += "\n";
        json.insert(json.size() - 2, ",\"scaling\":[" + entries + "]");  // before the final "}\n"
    }

    const bool written = write_text(options.out_dir + "/report.json", json) &&
                         write_text(options.out_dir + "/report.md",
                                    report_markdown(options, trials, verdict, bytes_per_event, lanes_seen, scaling_md)) &&
                         write_text(options.out_dir + "/sizing.svg", sizing_svg(trials, verdict, options.max_p99_ms));
    if (!written) {
        std::fprintf(stderr, "cefd-loadgen size: cannot write the report into %s\n", options.out_dir.c_str());
        return 1;
    }
    std::printf("{\"max_zero_loss_eps\":%.0f,\"cpu_us_per_event\":%.3f,\"p99_ms\":%.2f,\"collectors_needed\":%d,"
                "\"dcrs_needed\":%d,\"report\":\"%s/report.md\"}\n",
                verdict.max_zero_loss_eps, verdict.cpu_us_per_event, verdict.p99_ms, verdict.collectors_needed,
                verdict.dcrs_needed, options.out_dir.c_str());
    return verdict.reached ? 0 : 1;
}

}  // namespace cefd::loadgen
