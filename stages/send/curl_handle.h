// stages/send/curl_handle.h: RAII for the libcurl handles the send stage holds (CurlEasy,
// CurlMulti, CurlHeaders), the one-time global initialisation and the capped body writer.
// Move-only (CurlHeaders: not even that); destructors are noexcept. A CurlMulti must outlive
// the easy handles added to it, and they must be removed before it is destroyed.
#pragma once

#include <curl/curl.h>

#include <string>
#include <utility>

namespace cefd {

/// curl_global_init, once per process, before the first handle.
void curl_init_once();

class CurlEasy {
public:
    CurlEasy() : handle_(curl_easy_init()) {}
    ~CurlEasy() { if (handle_ != nullptr) curl_easy_cleanup(handle_); }
    CurlEasy(CurlEasy&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    CurlEasy& operator=(CurlEasy&& other) noexcept { std::swap(handle_, other.handle_); return *this; }
    CurlEasy(const CurlEasy&) = delete;
    CurlEasy& operator=(const CurlEasy&) = delete;
    [[nodiscard]] CURL* get() const noexcept { return handle_; }

private:
    CURL* handle_;
};

class CurlMulti {
public:
    CurlMulti() : handle_(curl_multi_init()) {}
    ~CurlMulti() { if (handle_ != nullptr) curl_multi_cleanup(handle_); }
    CurlMulti(CurlMulti&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    CurlMulti& operator=(CurlMulti&& other) noexcept { std::swap(handle_, other.handle_); return *this; }
    CurlMulti(const CurlMulti&) = delete;
    CurlMulti& operator=(const CurlMulti&) = delete;
    [[nodiscard]] CURLM* get() const noexcept { return handle_; }

private:
    CURLM* handle_;
};

class CurlHeaders {
public:
    CurlHeaders() = default;
    ~CurlHeaders() { reset(); }
    CurlHeaders(const CurlHeaders&) = delete;
    CurlHeaders& operator=(const CurlHeaders&) = delete;
    void append(const std::string& line) { list_ = curl_slist_append(list_, line.c_str()); }
    void reset() noexcept {
        if (list_ != nullptr) curl_slist_free_all(list_);
        list_ = nullptr;
    }
    [[nodiscard]] curl_slist* get() const noexcept { return list_; }

private:
    curl_slist* list_ = nullptr;
};

/// Appends the response body to a std::string, up to 64 KiB (error bodies are small; a
/// misbehaving proxy must not make us buffer megabytes).
size_t curl_append_to_string(char* data, size_t size, size_t count, void* user) noexcept;

}  // namespace cefd
