// Helpers shared by the stand-in's route files (standin.cpp, identity_routes.cpp,
// ingest_routes.cpp, control_routes.cpp): clocks, text and form parsing, OAuth error bodies,
// random hex, atomic file writes and the per-thread body checker. Internal to the stand-in.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "tools/azure_standin/ingest.h"
#include "tools/azure_standin/standin.h"

namespace httplib {
struct Response;
}

namespace cefd::standin::detail {

inline constexpr std::string_view api_version = "2023-01-01";
// The ingestion api-versions the service takes (reference 1.1): the GA one, and the two previews
// other clients (fluent-bit, the otel-arrow exporter) still send.
inline constexpr std::array<std::string_view, 3> api_versions{api_version, "2021-11-01-preview", "2023-04-01-preview"};
// The pre-routing handler moves Content-Encoding here, so httplib hands the handler the raw
// wire bytes instead of inflating them itself (see Standin::create).
inline constexpr const char* wire_encoding_header = "X-Standin-Wire-Content-Encoding";
inline constexpr std::array<std::string_view, fault_count> fault_names{"outage", "429", "500", "drop", "drop_before"};

std::int64_t now_ns() noexcept;
std::int64_t unix_now_s() noexcept;
std::string lowercase(std::string_view text);
std::string_view trim(std::string_view text);
std::string random_hex(std::size_t bytes);
std::string url_decode(std::string_view text);
/// application/x-www-form-urlencoded, parsed here so the check does not depend on httplib's
/// exact Content-Type matching.
std::unordered_map<std::string, std::string> parse_form(std::string_view body);
void oauth_error(httplib::Response& response, int status, std::string_view error, std::string_view description);
bool parse_u64(std::string_view text, std::uint64_t& out);
bool write_file_atomically(const std::string& path, std::string_view content);
/// One per httplib worker thread: its buffers grow to the largest request once and stay.
BodyChecker& thread_checker();

}  // namespace cefd::standin::detail
