// engine/result.h: Errc, Error and Result<T>, the return type of every operation that can fail
// for operational reasons (see STYLE.md section 6). Bad input is not an error: it is counted.
//
// GCC 12 ships <expected> only for C++23, so this is a small stand-in with the same shape
// (ok(), value(), error()); moving to std::expected later is a rename.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace cefd {

enum class Errc {
    ok = 0,
    config,             // start-up: a bad config value (message says which key)
    io,                 // a system call failed; Error::sys holds errno
    uring_unavailable,  // io_uring_queue_init failed or a needed opcode is missing
    address_in_use,     // bind: EADDRINUSE
    permission,         // EACCES/EPERM, e.g. port < 1024 without CAP_NET_BIND_SERVICE
    corrupt,            // a checksum or length did not match what was written
    no_space,           // ENOSPC / a configured byte limit reached
    http,               // a request failed at the HTTP level (status in Error::sys)
    auth,               // a token could not be obtained
    timeout,
    closed,             // the other side went away or the component is stopping
    unexpected,         // anything else: the message carries the raw value
};

struct Error {
    Errc code = Errc::unexpected;
    int sys = 0;          // errno or HTTP status, when there is one
    std::string message;  // for the operator; never contains a secret

    Error() = default;
    Error(Errc c, int s = 0, std::string m = {}) : code(c), sys(s), message(std::move(m)) {}
    Error(Errc c, std::string m) : code(c), message(std::move(m)) {}

    /// "message (errno 13: Permission denied)" style text for logs.
    [[nodiscard]] std::string describe() const;
};

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor): like expected
    Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

    [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    T& value() & { assert(ok()); return std::get<0>(v_); }
    const T& value() const& { assert(ok()); return std::get<0>(v_); }
    T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
    const Error& error() const { assert(!ok()); return std::get<1>(v_); }

    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }

private:
    std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;
inline Status ok_status() { return Ok{}; }

}  // namespace cefd
