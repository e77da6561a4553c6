// Definitions of the helpers in standin_common.h.
#include "tools/azure_standin/standin_common.h"

#include <sys/random.h>
#include <fcntl.h>
#include <unistd.h>

#include <httplib.h>

#include <cerrno>
#include <charconv>
#include <chrono>

#include "engine/log.h"
#include "engine/row/row_json.h"

namespace cefd::standin::detail {

std::int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

std::int64_t unix_now_s() noexcept {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string lowercase(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return out;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

std::string random_hex(std::size_t bytes) {
    std::string raw(bytes, '\0');
    std::size_t filled = 0;
    while (filled < bytes) {  // getrandom never blocks after boot for <= 256 bytes
        const ssize_t got = ::getrandom(raw.data() + filled, bytes - filled, 0);
        if (got > 0) filled += static_cast<std::size_t>(got);
        else if (errno != EINTR) CEFD_ASSERT(false);
    }
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex;
    for (const char c : raw) {
        hex += digits[(static_cast<unsigned char>(c) >> 4) & 0xf];
        hex += digits[static_cast<unsigned char>(c) & 0xf];
    }
    return hex;
}

namespace {

int from_hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string url_decode(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '+') {
            out += ' ';
        } else if (text[i] == '%' && i + 2 < text.size() && from_hex(text[i + 1]) >= 0 && from_hex(text[i + 2]) >= 0) {
            out += static_cast<char>(from_hex(text[i + 1]) * 16 + from_hex(text[i + 2]));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

/// application/x-www-form-urlencoded, parsed here so the check does not depend on httplib's
/// exact Content-Type matching.
std::unordered_map<std::string, std::string> parse_form(std::string_view body) {
    std::unordered_map<std::string, std::string> form;
    while (!body.empty()) {
        const std::size_t amp = body.find('&');
        const std::string_view pair = body.substr(0, amp);
        body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
        const std::size_t equals = pair.find('=');
        form[url_decode(pair.substr(0, equals))] =
            equals == std::string_view::npos ? std::string{} : url_decode(pair.substr(equals + 1));
    }
    return form;
}

void oauth_error(httplib::Response& response, int status, std::string_view error, std::string_view description) {
    response.status = status;
    response.set_content("{\"error\":\"" + std::string(error) + "\",\"error_description\":\"" +
                             json_escape(description) + "\"}",
                         "application/json");
}

bool parse_u64(std::string_view text, std::uint64_t& out) {
    if (text.empty()) return false;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
    return error == std::errc{} && end == text.data() + text.size();
}

bool write_file_atomically(const std::string& path, std::string_view content) {
    const std::string temporary = path + ".tmp";
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    const bool written = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
    ::close(fd);
    return written && ::rename(temporary.c_str(), path.c_str()) == 0;
}

BodyChecker& thread_checker() {
    // One per httplib worker thread: its buffers grow to the largest request once and stay.
    thread_local BodyChecker checker;
    return checker;
}

}  // namespace cefd::standin::detail
