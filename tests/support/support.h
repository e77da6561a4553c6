// tests/support/support.h: what tests share. Real parts only: temporary directories on disk,
// loopback ports, real child processes. Waiting is always for a condition with a deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace cefd::test {

/// A path inside the source tree ("tests/data/x.log") or the build tree.
std::string source_path(const std::string& relative);
std::string binary_path(const std::string& relative);

/// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

/// A loopback port that was free a moment ago (bind port 0, read it back, close). SOCK_DGRAM or
/// SOCK_STREAM; `both` checks that UDP and TCP are free on the same number. Never one this
/// process was given before: two calls for one config (a listener and the metrics port) got the
/// same number back now and then, since the kernel hands out a just-closed port again.
int free_port(bool both = true);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content, int mode = 0600);
std::vector<std::string> read_lines(const std::string& path);
/// The lines of a file another process is still appending to: only lines already ended by a
/// newline, so a line caught half-written is left for the next read instead of returned cut.
std::vector<std::string> read_complete_lines(const std::string& path);
/// Non-empty lines that do not start with '#'.
std::vector<std::string> sample_lines(const std::string& path);

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
bool wait_until(std::chrono::milliseconds timeout, const std::function<bool()>& condition);

/// A child process. stdout and stderr go to files in `log_dir`, read back with out()/err().
class Process {
public:
    Process(std::vector<std::string> argv, const std::string& log_dir, const std::string& name);
    ~Process();  // SIGKILL if still running
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] bool running();
    /// Sends `signal`; waits up to `timeout` for exit. Returns the exit code (128+sig if killed),
    /// or -1 on timeout.
    int stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(30));
    int wait(std::chrono::milliseconds timeout);
    [[nodiscard]] std::string out() const;
    [[nodiscard]] std::string err() const;

private:
    pid_t pid_ = -1;
    int exit_code_ = -1;
    std::string out_path_;
    std::string err_path_;
};

/// Sends each line as one UDP datagram to 127.0.0.1:port.
void send_udp(int port, const std::vector<std::string>& lines);
/// Sends each line, newline-terminated, over one TCP connection to 127.0.0.1:port.
void send_tcp(int port, const std::vector<std::string>& lines);

/// Runs a command with /bin/sh -c, returns its exit code and fills `output` with stdout.
int run_command(const std::string& command, std::string* output = nullptr);

}  // namespace cefd::test
