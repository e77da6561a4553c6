// stages/send/curl_handle.cpp: the process-wide libcurl initialisation and the capped
// response-body writer shared by the ingestion requests and the token fetches.
#include "stages/send/curl_handle.h"

#include <algorithm>
#include <mutex>

namespace cefd {

void curl_init_once() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t curl_append_to_string(char* data, size_t size, size_t count, void* user) noexcept {
    auto* out = static_cast<std::string*>(user);
    const std::size_t n = size * count;
    const std::size_t room = out->size() < 65'536 ? 65'536 - out->size() : 0;
    out->append(data, std::min(n, room));
    return n;
}

}  // namespace cefd
