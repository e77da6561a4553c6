// tests/fuzz/fuzz_check.h: what the fuzz targets check beyond "no crash, no sanitizer report".
// A finding is a call to fuzz_fail(), which prints why and aborts so libFuzzer saves the input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace cefd::fuzz {

[[noreturn]] inline void fail(const char* what, std::string_view detail = {}) {
    std::fprintf(stderr, "fuzz check failed: %s\n%.*s\n", what, static_cast<int>(detail.size() > 4096 ? 4096 : detail.size()),
                 detail.data());
    std::abort();
}

#define CEFD_FUZZ_CHECK(condition, detail) \
    do {                                   \
        if (!(condition)) ::cefd::fuzz::fail(#condition, (detail)); \
    } while (0)

/// True when `part` is empty or lies inside `whole` (views must never point elsewhere).
inline bool inside(std::string_view part, std::string_view whole) noexcept {
    if (part.empty()) return true;
    return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

/// A cheap structural check of what write_row_json() promises: one JSON object whose members
/// are "key": string or "key": number (RFC 8259 grammar), nothing after it. Strings may hold
/// any byte >= 0x20 except '"' and '\\' unescaped; escapes must be the RFC 8259 ones.
class JsonRowChecker {
public:
    explicit JsonRowChecker(std::string_view text) noexcept : s_(text) {}

    /// Returns nullptr when valid, otherwise what was wrong (at_ says where).
    const char* check() noexcept {
        if (!take('{')) return "no '{'";
        if (take('}')) return at_ == s_.size() ? nullptr : "bytes after '}'";
        for (;;) {
            if (!string()) return "bad key string";
            if (!take(':')) return "no ':'";
            if (peek() == '"') {
                if (!string()) return "bad string value";
            } else if (!number()) {
                return "bad number value";
            }
            if (take(',')) continue;
            if (!take('}')) return "no ',' or '}'";
            return at_ == s_.size() ? nullptr : "bytes after '}'";
        }
    }
    [[nodiscard]] std::size_t position() const noexcept { return at_; }

private:
    char peek() const noexcept { return at_ < s_.size() ? s_[at_] : '\0'; }
    bool take(char c) noexcept {
        if (at_ < s_.size() && s_[at_] == c) {
            ++at_;
            return true;
        }
        return false;
    }
    static bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
    static bool is_hex(char c) noexcept {
        return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    }
    bool string() noexcept {
        if (!take('"')) return false;
        while (at_ < s_.size()) {
            const auto c = static_cast<unsigned char>(s_[at_++]);
            if (c == '"') return true;
            if (c < 0x20) return false;
            if (c != '\\') continue;
            if (at_ >= s_.size()) return false;
            const char e = s_[at_++];
            if (e == 'u') {
                for (int i = 0; i < 4; ++i)
                    if (at_ >= s_.size() || !is_hex(s_[at_++])) return false;
            } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
                return false;
            }
        }
        return false;
    }
    bool number() noexcept {
        take('-');
        if (take('0')) {
        } else if (is_digit(peek()) && peek() != '0') {
            while (is_digit(peek())) ++at_;
        } else {
            return false;
        }
        if (take('.')) {
            if (!is_digit(peek())) return false;
            while (is_digit(peek())) ++at_;
        }
        if (peek() == 'e' || peek() == 'E') {
            ++at_;
            if (peek() == '+' || peek() == '-') ++at_;
            if (!is_digit(peek())) return false;
            while (is_digit(peek())) ++at_;
        }
        return true;
    }

    std::string_view s_;
    std::size_t at_ = 0;
};

}  // namespace cefd::fuzz
