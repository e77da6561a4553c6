// The metrics endpoint against clients that misbehave, on the real cefd: garbage, a 1 MB
// request line, a client that stops half-way, and 500 idle connections. Scrapes keep being
// answered (a 5 s curl deadline: a liveness check, not a timing assertion), cefd holds a bounded
// number of descriptors, the pipeline keeps delivering, and every refusal is counted.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/harness.h"

namespace cefd::test {
namespace {

using namespace std::chrono_literals;

/// A connected loopback TCP socket, closed on destruction.
class Client {
public:
    explicit Client(int port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(static_cast<std::uint16_t>(port));
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    }
    ~Client() {
        if (fd_ >= 0) ::close(fd_);
    }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    Client(Client&& other) noexcept : fd_(std::exchange(other.fd_, -1)), connected_(other.connected_) {}

    [[nodiscard]] bool connected() const { return connected_; }
    /// Sends everything it can; false once the server closed or reset.
    bool send_all(std::string_view data) {
        while (!data.empty()) {
            const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            if (n <= 0) return false;
            data.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }
    /// Reads until the server closes (or resets), at most `timeout`. What arrived.
    std::string read_until_closed(std::chrono::milliseconds timeout, bool* closed = nullptr) {
        std::string out;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) break;
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
            char buffer[4096];
            const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
            if (n <= 0) {
                if (closed != nullptr) *closed = true;
                break;
            }
            out.append(buffer, static_cast<std::size_t>(n));
        }
        return out;
    }

private:
    int fd_;
    bool connected_ = false;
};

/// One series' value from a scrape, e.g. `cefd_metrics_rejected_total{reason="malformed"}`; -1 if absent.
double series(const std::string& body, const std::string& name) {
    const std::size_t at = body.find("\n" + name + " ");
    if (at == std::string::npos) return -1;
    return std::atof(body.c_str() + at + 1 + name.size() + 1);
}

/// GET /metrics with a 5 s deadline; "" if it did not answer in time.
std::string scrape(int port) {
    std::string out;
    run_command("curl -s -m 5 http://127.0.0.1:" + std::to_string(port) + "/metrics", &out);
    return out;
}

double rejected(int port, const char* reason) {
    return series(scrape(port), std::string("cefd_metrics_rejected_total{reason=\"") + reason + "\"}");
}

std::size_t open_descriptors(pid_t pid) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++n;
    return n;
}

TEST(MetricsHostile, GarbageIsAnswered400AndClosed) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure);
    for (const std::string& garbage : {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
                                      std::string("hello there\r\n\r\n"), std::string("GET /metrics\r\n\r\n"),
                                      std::string("GET /metrics HTTP/9.9\r\n\r\n")}) {
        Client client(cefd.metrics_port());
        ASSERT_TRUE(client.connected());
        ASSERT_TRUE(client.send_all(garbage));
        bool closed = false;
        const std::string answer = client.read_until_closed(10s, &closed);
        EXPECT_EQ(answer.rfind("HTTP/1.1 400 ", 0), 0U) << "for " << testing::PrintToString(garbage) << ": " << answer;
        EXPECT_TRUE(closed) << "the connection stayed open after " << testing::PrintToString(garbage);
    }
    EXPECT_GE(rejected(cefd.metrics_port(), "malformed"), 4);
    {
        Client client(cefd.metrics_port());
        ASSERT_TRUE(client.send_all("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
        EXPECT_EQ(client.read_until_closed(10s).rfind("HTTP/1.1 405 ", 0), 0U);
    }
    {
        Client client(cefd.metrics_port());
        ASSERT_TRUE(client.send_all("GET /nothing-here HTTP/1.1\r\n\r\n"));
        EXPECT_EQ(client.read_until_closed(10s).rfind("HTTP/1.1 404 ", 0), 0U);
    }
    const std::string body = scrape(cefd.metrics_port());
    EXPECT_EQ(series(body, "cefd_metrics_rejected_total{reason=\"method\"}"), 1) << body;
    EXPECT_EQ(series(body, "cefd_metrics_rejected_total{reason=\"not_found\"}"), 1) << body;
}

TEST(MetricsHostile, MegabyteRequestLineIsRefusedWith431) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure);
    Client client(cefd.metrics_port());
    ASSERT_TRUE(client.connected());
    const std::string line = "GET /" + std::string(1 << 20, 'a') + " HTTP/1.1\r\n\r\n";
    // The server answers after its first 8 KiB, so read while the rest is still being written.
    std::jthread writer([&client, &line] { client.send_all(line); });
    const std::string answer = client.read_until_closed(10s);
    EXPECT_EQ(answer.rfind("HTTP/1.1 431 ", 0), 0U) << answer.substr(0, 200);
    writer.join();
    EXPECT_EQ(rejected(cefd.metrics_port(), "too_large"), 1);
    EXPECT_NE(scrape(cefd.metrics_port()).find("cefd_build_info{"), std::string::npos) << "no scrape after the 1 MB line";
}

TEST(MetricsHostile, ClientThatStopsHalfWayIsClosedAtTheReadDeadline) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure);
    Client client(cefd.metrics_port());
    ASSERT_TRUE(client.send_all("GET /metrics HTTP/1.1\r\nHost: x\r\n"));  // no empty line: never complete
    bool closed = false;
    const std::string answer = client.read_until_closed(30s, &closed);
    EXPECT_TRUE(closed) << "still open after 30 s";
    EXPECT_EQ(answer, "") << "answered an incomplete request";
    EXPECT_EQ(rejected(cefd.metrics_port(), "read_timeout"), 1);
}

TEST(MetricsHostile, FiveHundredIdleConnectionsDoNotBlockScrapesOrThePipeline) {
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure);
    ASSERT_NE(scrape(cefd.metrics_port()).find("cefd_build_info{"), std::string::npos);
    const std::size_t descriptors_before = open_descriptors(cefd.process().pid());

    std::vector<Client> idle;
    idle.reserve(500);
    for (int i = 0; i < 500; ++i) {
        idle.emplace_back(cefd.metrics_port());
        ASSERT_TRUE(idle.back().connected()) << "connection " << i;
    }
    // Events sent while the endpoint is under siege are delivered.
    const std::vector<std::string> lines = sample_lines(source_path("tests/data/synthetic-darktrace-cef.log"));
    send_udp(cefd.port(), lines);

    for (int i = 0; i < 3; ++i) {
        const std::string body = scrape(cefd.metrics_port());
        ASSERT_NE(body.find("cefd_build_info{"), std::string::npos) << "scrape " << i << " with 500 idle connections got: " << body;
    }
    // Bounded: max_connections (64) slots, not one descriptor per waiting client.
    const std::size_t descriptors = open_descriptors(cefd.process().pid());
    EXPECT_LE(descriptors, descriptors_before + 64 + 2) << "before: " << descriptors_before;
    EXPECT_GE(rejected(cefd.metrics_port(), "evicted"), 500 - 64);

    ASSERT_TRUE(wait_until(30s, [&] { return azure.row_count() >= lines.size(); }))
        << "rows delivered: " << azure.row_count() << " of " << lines.size();

    // The idle ones are closed at their read deadline, and the endpoint is back to normal.
    ASSERT_TRUE(wait_until(30s, [&] { return series(scrape(cefd.metrics_port()), "cefd_metrics_connections") == 1; }))
        << "connections still open: " << series(scrape(cefd.metrics_port()), "cefd_metrics_connections");
    idle.clear();
    EXPECT_GE(rejected(cefd.metrics_port(), "read_timeout"), 1);
    EXPECT_NE(scrape(cefd.metrics_port()).find("cefd_build_info{"), std::string::npos);
}

}  // namespace
}  // namespace cefd::test
