// The notify protocol against a real unix datagram socket, the way systemd listens for it.
#include "engine/runtime/systemd.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "engine/unique_fd.h"
#include "tests/support/support.h"

namespace cefd {
namespace {

// Binds a datagram socket at `name` (a path, or '@' + abstract name) and points $NOTIFY_SOCKET
// at it; restores the environment on destruction.
class NotifyListener {
public:
    explicit NotifyListener(const std::string& name) : fd_(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::memcpy(address.sun_path, name.data(), name.size());
        const bool abstract = name[0] == '@';
        if (abstract) address.sun_path[0] = '\0';
        const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (abstract ? 0 : 1));
        bound_ = fd_.valid() && ::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&address), length) == 0;
        ::setenv("NOTIFY_SOCKET", name.c_str(), 1);
    }
    ~NotifyListener() { ::unsetenv("NOTIFY_SOCKET"); }
    NotifyListener(const NotifyListener&) = delete;
    NotifyListener& operator=(const NotifyListener&) = delete;

    [[nodiscard]] bool bound() const { return bound_; }
    // The next datagram, or "<none>" when none arrives within the deadline.
    std::string receive(int timeout_ms = 5'000) {
        pollfd pfd{.fd = fd_.get(), .events = POLLIN, .revents = 0};
        if (::poll(&pfd, 1, timeout_ms) != 1) return "<none>";
        char buffer[4096];
        const ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, 0);
        return n < 0 ? "<error>" : std::string(buffer, static_cast<std::size_t>(n));
    }

private:
    UniqueFd fd_;
    bool bound_ = false;
};

TEST(SystemdNotify, SendsStateAsOneDatagramToPathSocket) {
    test::TempDir dir;
    NotifyListener listener{dir.file("notify")};
    ASSERT_TRUE(listener.bound());
    systemd::notify("READY=1");
    EXPECT_EQ(listener.receive(), "READY=1");
    systemd::notify("STATUS=lanes=2 spool=0 B\nWATCHDOG=1");
    EXPECT_EQ(listener.receive(), "STATUS=lanes=2 spool=0 B\nWATCHDOG=1");
    systemd::notify("STOPPING=1");
    EXPECT_EQ(listener.receive(), "STOPPING=1");
}

TEST(SystemdNotify, SendsToAbstractSocket) {
    NotifyListener listener{"@cefd-notify-test-" + std::to_string(::getpid())};
    ASSERT_TRUE(listener.bound());
    systemd::notify("RELOADING=1");
    EXPECT_EQ(listener.receive(), "RELOADING=1");
}

TEST(SystemdNotify, DoesNothingWithoutOrWithBadSocket) {
    ::unsetenv("NOTIFY_SOCKET");
    systemd::notify("READY=1");  // outside systemd: no socket, no crash
    ::setenv("NOTIFY_SOCKET", "relative/path", 1);
    systemd::notify("READY=1");
    ::setenv("NOTIFY_SOCKET", ("/" + std::string(200, 'x')).c_str(), 1);  // longer than sun_path
    systemd::notify("READY=1");
    ::setenv("NOTIFY_SOCKET", "/nonexistent/cefd-notify", 1);
    systemd::notify("READY=1");
    ::unsetenv("NOTIFY_SOCKET");
    SUCCEED();
}

TEST(SystemdWatchdog, ReadsIntervalForThisProcessOnly) {
    ::unsetenv("WATCHDOG_PID");
    ::unsetenv("WATCHDOG_USEC");
    EXPECT_EQ(systemd::watchdog_interval_us(), 0);
    ::setenv("WATCHDOG_USEC", "20000000", 1);
    EXPECT_EQ(systemd::watchdog_interval_us(), 20'000'000);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    EXPECT_EQ(systemd::watchdog_interval_us(), 20'000'000);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
    EXPECT_EQ(systemd::watchdog_interval_us(), 0) << "the watchdog belongs to another process";
    ::unsetenv("WATCHDOG_PID");
    for (const char* bad : {"", "0", "-5", "12abc", "99999999999999999999999"}) {
        ::setenv("WATCHDOG_USEC", bad, 1);
        EXPECT_EQ(systemd::watchdog_interval_us(), 0) << "WATCHDOG_USEC=\"" << bad << "\"";
    }
    ::unsetenv("WATCHDOG_USEC");
}

}  // namespace
}  // namespace cefd
