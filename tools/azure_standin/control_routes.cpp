// Control and stats routes: /control (an outage, fault rates, size limits and the token lifetime,
// changed at run time; a bad request changes nothing) and /stats (the counters tests and benches
// read).
#include "tools/azure_standin/standin.h"

#include <httplib.h>

#include <algorithm>

#include "engine/row/row_json.h"
#include "tools/azure_standin/standin_common.h"

namespace cefd::standin {

using namespace detail;

void Standin::on_control(const httplib::Request& request, httplib::Response& response) {
    struct Knob {
        const char* name;
        std::atomic<std::uint64_t>* value;
    };
    const std::array<Knob, 8> knobs{{
        {"fault_429_every", &knobs_.fault_429_every},
        {"retry_after_s", &knobs_.retry_after_s},
        {"fault_500_every", &knobs_.fault_500_every},
        {"fault_drop_every", &knobs_.fault_drop_every},
        {"fault_drop_before_every", &knobs_.fault_drop_before_every},
        {"max_body_bytes", &knobs_.max_body_bytes},
        {"max_json_bytes", &knobs_.max_json_bytes},
        {"token_lifetime_s", &knobs_.token_lifetime_s},
    }};
    // Check every parameter before changing any: a bad request changes nothing.
    std::string errors;
    for (const auto& [key, value] : request.params) {
        std::uint64_t number = 0;
        const bool known = key == "outage_s" || std::any_of(knobs.begin(), knobs.end(), [&](const Knob& knob) {
                               return key == knob.name;
                           });
        if (!known) errors += "unknown knob '" + key + "'; ";
        else if (!parse_u64(value, number)) errors += key + " must be an unsigned integer; ";
    }
    if (!errors.empty()) {
        response.status = 400;
        response.set_content("{\"error\":{\"code\":\"InvalidControl\",\"message\":\"" + json_escape(errors) + "\"}}",
                             "application/json");
        return;
    }
    for (const auto& [key, value] : request.params) {
        std::uint64_t number = 0;
        (void)parse_u64(value, number);
        if (key == "outage_s") {
            knobs_.outage_until_ns = number == 0 ? 0 : now_ns() + static_cast<std::int64_t>(number) * 1'000'000'000;
        }
        for (const Knob& knob : knobs) {
            if (key == knob.name) knob.value->store(number, std::memory_order_relaxed);
        }
    }
    std::string body = "{";
    for (const Knob& knob : knobs) {
        // Appended piece by piece: `"\"" + std::string(...)` trips GCC 12's -Wrestrict false
        // positive at -O3 (GCC bug 105329).
        body += '"';
        body += knob.name;
        body += "\":";
        body += std::to_string(knob.value->load(std::memory_order_relaxed));
        body += ',';
    }
    const std::int64_t outage_left_ns = knobs_.outage_until_ns.load(std::memory_order_relaxed) - now_ns();
    body += "\"outage_remaining_ms\":" + std::to_string(outage_left_ns > 0 ? outage_left_ns / 1'000'000 : 0) + "}";
    response.set_content(body, "application/json");
}

void Standin::on_stats(const httplib::Request&, httplib::Response& response) {
    const auto value = [](const std::atomic<std::uint64_t>& counter) {
        return std::to_string(counter.load(std::memory_order_relaxed));
    };
    std::string body = "{\"requests\":" + value(stats_.requests) + ",\"accepted_requests\":" +
                       value(stats_.accepted_requests) + ",\"rows\":" + value(stats_.rows) +
                       ",\"rejected_requests\":" + value(stats_.rejected_requests) + ",\"rejected\":{";
    bool first = true;
    for (std::size_t i = 1; i < reject_count; ++i) {
        if (stats_.rejected[i].load(std::memory_order_relaxed) == 0) continue;
        body += std::string(first ? "" : ",") + "\"" + std::string(reject_name(static_cast<Reject>(i))) +
                "\":" + value(stats_.rejected[i]);
        first = false;
    }
    body += "},\"tokens_issued\":" + value(stats_.tokens_issued) + ",\"token_rejected\":" +
            value(stats_.token_rejected) + ",\"arc_challenges\":" + value(stats_.arc_challenges) + ",\"faults\":{";
    for (std::size_t i = 0; i < fault_count; ++i) {
        body += std::string(i == 0 ? "" : ",") + "\"" + std::string(fault_names[i]) + "\":" + value(stats_.faults[i]);
    }
    body += "},\"bytes_in\":" + value(stats_.bytes_in) + ",\"bytes_json\":" + value(stats_.bytes_json) +
            ",\"store_errors\":" + value(stats_.store_errors) +
            ",\"bench_unchecked_requests\":" + value(stats_.bench_unchecked_requests) +
            ",\"long_values\":" + value(stats_.long_values) +
            ",\"time_generated_out_of_range\":" + value(stats_.times_out_of_range) + "}";
    response.set_content(body, "application/json");
}

}  // namespace cefd::standin
