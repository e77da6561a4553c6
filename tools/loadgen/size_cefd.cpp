// tools/loadgen/size_cefd.cpp: the config copy and the cefd child for per-core scaling (size_cefd.h).
#include "tools/loadgen/size_cefd.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "tools/loadgen/size_probe.h"

namespace cefd::loadgen::sizing {

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

CefdChild::CefdChild(const SizeOptions& options, unsigned lanes, std::string& error) {
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

CefdChild::~CefdChild() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
}

}  // namespace cefd::loadgen::sizing
