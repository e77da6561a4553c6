#include "tools/loadgen/verify.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string_view>
#include <thread>
#include <vector>

namespace cefd::loadgen {
namespace {

class Tally {
public:
    Tally(const std::string& run_id, std::uint64_t expected)
        : needle_("cefdseq=" + run_id + "-"), copies_(expected, 0) {}

    void add_row(std::string_view row) {
        const std::size_t at = row.find(needle_);
        if (at == std::string_view::npos) return;
        std::uint64_t sequence = 0;
        std::size_t i = at + needle_.size();
        const std::size_t first_digit = i;
        // Bounded by the row; 20 digits is the most a 64-bit number has.
        while (i < row.size() && i - first_digit < 20 && row[i] >= '0' && row[i] <= '9') {
            sequence = sequence * 10 + static_cast<std::uint64_t>(row[i] - '0');
            ++i;
        }
        if (i == first_digit || (i < row.size() && row[i] >= '0' && row[i] <= '9')) return;
        if (sequence >= copies_.size()) return;  // not an event of this run's range
        std::uint32_t& copies = copies_[sequence];
        if (copies == 0) ++delivered_;
        else ++duplicated_;
        ++copies;
    }

    [[nodiscard]] bool complete() const noexcept { return delivered_ == copies_.size(); }
    [[nodiscard]] VerifyReport report() const noexcept {
        return {.delivered = delivered_, .lost = copies_.size() - delivered_, .duplicated = duplicated_};
    }

private:
    std::string needle_;
    std::vector<std::uint32_t> copies_;
    std::uint64_t delivered_ = 0;
    std::uint64_t duplicated_ = 0;
};

}  // namespace

VerifyReport verify_delivery(const std::string& path, const std::string& run_id, std::uint64_t expected,
                             double idle_wait_s) {
    Tally tally(run_id, expected);
    std::string pending;  // a row whose newline has not been written yet
    std::vector<char> chunk(1 << 20);
    int fd = -1;
    auto last_growth = std::chrono::steady_clock::now();
    const auto idle_limit = std::chrono::duration<double>(idle_wait_s);
    while (!tally.complete()) {
        if (fd < 0) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // may not exist yet
        bool grew = false;
        while (fd >= 0) {
            const ssize_t got = ::read(fd, chunk.data(), chunk.size());
            if (got <= 0) break;
            grew = true;
            std::string_view data(chunk.data(), static_cast<std::size_t>(got));
            while (!data.empty()) {
                const std::size_t newline = data.find('\n');
                if (newline == std::string_view::npos) {
                    pending.append(data);
                    break;
                }
                if (pending.empty()) {
                    tally.add_row(data.substr(0, newline));
                } else {
                    pending.append(data.substr(0, newline));
                    tally.add_row(pending);
                    pending.clear();
                }
                data.remove_prefix(newline + 1);
            }
        }
        const auto now = std::chrono::steady_clock::now();
        if (grew) last_growth = now;
        if (tally.complete() || now - last_growth >= idle_limit) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling a file, not a test
    }
    if (fd >= 0) ::close(fd);
    return tally.report();
}

}  // namespace cefd::loadgen
