// tests/unit/send/fake_azure.h: a small Logs Ingestion + Entra ID imitation on loopback HTTP
// (cpp-httplib), scriptable per request, for the sender's fault paths. The real stand-in
// (tools/azure_standin) is exercised in standin_test.cpp; this one exists so the sender's tests
// do not depend on another tool's build, and can script exact answer sequences.
#pragma once

#include <httplib.h>
#include <simdjson.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "engine/clock.h"

namespace cefd::test {

class FakeAzure {
public:
    static constexpr const char* tenant = "tenant-1";
    static constexpr const char* secret = "s3cret&=+/ value";
    static constexpr const char* dcr = "dcr-0123456789abcdef0123456789abcdef";
    static constexpr const char* second_dcr = "dcr-22222222222222222222222222222222";

    FakeAzure() {
        server_.Post(std::string("/") + tenant + "/oauth2/v2.0/token", [this](const httplib::Request& req, httplib::Response& res) {
            std::unique_lock lock(mutex_);
            ++token_requests_;
            // Held requests wait here (bounded) until release_tokens(): a slow Entra ID.
            held_.wait_for(lock, std::chrono::seconds(20), [this] { return !hold_tokens_; });
            if (req.get_param_value("grant_type") != "client_credentials" || req.get_param_value("client_secret") != secret ||
                req.get_param_value("scope") != "https://monitor.azure.com//.default") {
                res.status = 401;
                res.set_content(R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."})", "application/json");
                return;
            }
            issue(res, false);
        });
        server_.Get("/metadata/identity/oauth2/token", [this](const httplib::Request& req, httplib::Response& res) {
            std::lock_guard lock(mutex_);
            if (req.get_header_value("Metadata") != "true" || req.get_param_value("resource") != "https://monitor.azure.com") {
                res.status = 400;
                res.set_content(R"({"error":"bad_request_102","error_description":"Required metadata header not specified"})", "application/json");
                return;
            }
            issue(res, true);
        });
        server_.Post(R"(/dataCollectionRules/([^/]+)/streams/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
            ingest(req, res);
        });
        port_ = server_.bind_to_any_port("127.0.0.1");
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        // listen_after_bind() sets is_running() once it accepts; wait for that, with a bound.
        for (int i = 0; i < 500 && !server_.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ~FakeAzure() {
        release_tokens();
        server_.stop();
        thread_.join();
    }

    [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

    /// Answers to give, in order, before normal processing (429 carries Retry-After: 1).
    void script(std::initializer_list<int> statuses) {
        std::lock_guard lock(mutex_);
        for (int s : statuses) script_.push_back(s);
    }
    void set_token_lifetime_s(int s) { std::lock_guard lock(mutex_); lifetime_s_ = s; }
    void set_max_json_bytes(std::size_t n) { std::lock_guard lock(mutex_); max_json_bytes_ = n; }
    void set_always(int status) { std::lock_guard lock(mutex_); always_ = status; }
    void revoke_tokens() { std::lock_guard lock(mutex_); tokens_.clear(); }
    /// Token requests wait until release_tokens() (at most 20 s).
    void hold_tokens() { std::lock_guard lock(mutex_); hold_tokens_ = true; }
    void release_tokens() {
        { std::lock_guard lock(mutex_); hold_tokens_ = false; }
        held_.notify_all();
    }
    /// Every request for `dcr_id` is answered with `status` (429 carries Retry-After: retry_after_s).
    void set_always_for(const std::string& dcr_id, int status, int retry_after_s = 1) {
        std::lock_guard lock(mutex_);
        always_for_[dcr_id] = {status, retry_after_s};
    }

    std::size_t rows() const { std::lock_guard lock(mutex_); return rows_; }
    std::size_t distinct_rows() const { std::lock_guard lock(mutex_); return ext_ids_.size(); }
    std::size_t tokens_issued() const { std::lock_guard lock(mutex_); return tokens_issued_; }
    std::size_t requests() const { std::lock_guard lock(mutex_); return requests_; }
    std::size_t token_requests() const { std::lock_guard lock(mutex_); return token_requests_; }
    std::size_t requests_for(const std::string& dcr_id) const {
        std::lock_guard lock(mutex_);
        auto it = requests_for_.find(dcr_id);
        return it == requests_for_.end() ? 0 : it->second;
    }
    std::size_t rows_for(const std::string& dcr_id) const {
        std::lock_guard lock(mutex_);
        auto it = rows_for_.find(dcr_id);
        return it == rows_for_.end() ? 0 : it->second;
    }
    std::string last_request_id() const { std::lock_guard lock(mutex_); return last_request_id_; }
    std::size_t max_json_seen() const { std::lock_guard lock(mutex_); return max_json_seen_; }

private:
    void issue(httplib::Response& res, bool imds) {
        const std::string token = "tok-" + std::to_string(++tokens_issued_);
        tokens_[token] = monotonic_ns() + static_cast<std::int64_t>(lifetime_s_) * 1'000'000'000;
        const std::string lifetime = imds ? "\"" + std::to_string(lifetime_s_) + "\"" : std::to_string(lifetime_s_);
        res.set_content(R"({"token_type":"Bearer","expires_in":)" + lifetime + R"(,"access_token":")" + token + "\"}",
                        "application/json");
    }

    void ingest(const httplib::Request& req, httplib::Response& res) {
        std::lock_guard lock(mutex_);
        ++requests_;
        last_request_id_ = req.get_header_value("x-ms-client-request-id");
        const std::string auth = req.get_header_value("Authorization");
        const auto token = tokens_.find(auth.starts_with("Bearer ") ? auth.substr(7) : "");
        if (token == tokens_.end() || token->second < monotonic_ns()) return fail(res, 401, "TokenExpired");
        const std::string dcr_id = req.matches[1];
        if (dcr_id != dcr && dcr_id != second_dcr) return fail(res, 404, "NotFound");
        ++requests_for_[dcr_id];
        if (auto it = always_for_.find(dcr_id); it != always_for_.end()) {
            if (it->second.first == 429) res.set_header("Retry-After", std::to_string(it->second.second));
            return fail(res, it->second.first, "AlwaysForDcr");
        }
        if (req.get_header_value("Content-Encoding") != "gzip" || req.get_header_value("Content-Type") != "application/json")
            return fail(res, 400, "BadHeaders");
        if (!script_.empty()) {
            const int status = script_.front();
            script_.pop_front();
            if (status == 429) res.set_header("Retry-After", "1");
            return fail(res, status, "Scripted");
        }
        if (always_ != 0) return fail(res, always_, "Always");
        // httplib has already gunzipped the body (Content-Encoding: gzip).
        max_json_seen_ = std::max(max_json_seen_, req.body.size());
        if (req.body.size() > max_json_bytes_) return fail(res, 413, "ContentLengthLimitExceeded");
        simdjson::dom::parser parser;
        simdjson::dom::array rows;
        if (parser.parse(req.body).get_array().get(rows) != simdjson::SUCCESS) return fail(res, 400, "InvalidJson");
        for (auto row : rows) {
            std::string_view ext;
            if (row["ExtID"].get(ext) != simdjson::SUCCESS) return fail(res, 400, "MissingExtID");
            ext_ids_.insert(std::string(ext));
            ++rows_;
            ++rows_for_[dcr_id];
        }
        res.status = 204;
    }

    static void fail(httplib::Response& res, int status, const char* code) {
        res.status = status;
        res.set_content(std::string(R"({"error":{"code":")") + code + R"(","message":"fake"}})", "application/json");
    }

    httplib::Server server_;
    std::thread thread_;
    int port_ = 0;
    mutable std::mutex mutex_;
    std::condition_variable held_;
    bool hold_tokens_ = false;
    std::size_t token_requests_ = 0;
    std::map<std::string, std::pair<int, int>> always_for_;
    std::map<std::string, std::size_t> requests_for_;
    std::map<std::string, std::size_t> rows_for_;
    std::deque<int> script_;
    std::map<std::string, std::int64_t> tokens_;
    std::set<std::string> ext_ids_;
    std::size_t rows_ = 0;
    std::size_t requests_ = 0;
    std::size_t tokens_issued_ = 0;
    std::size_t max_json_bytes_ = 1'048'576;
    std::size_t max_json_seen_ = 0;
    int lifetime_s_ = 3600;
    int always_ = 0;
    std::string last_request_id_;
};

}  // namespace cefd::test
