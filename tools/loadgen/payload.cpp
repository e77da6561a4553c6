#include "tools/loadgen/payload.h"

#include <fstream>
#include <string_view>

#include "loadgen_breach_853b.h"
#include "loadgen_samples.h"
#include "tools/loadgen/templates.h"

namespace cefd::loadgen {
namespace {

constexpr std::size_t line_bytes_max = 65'000;

/// Non-empty lines that do not start with '#', trailing whitespace (and CR) removed.
std::vector<std::string> split_lines(std::string_view text) {
    std::vector<std::string> lines;
    while (!text.empty()) {
        const std::size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
            line.remove_suffix(1);
        }
        if (line.empty() || line.front() == '#') continue;
        lines.emplace_back(line);
    }
    return lines;
}

/// How many events --payload templates generates before sending (then cycled).
constexpr std::size_t template_pool_events = 4'096;

}  // namespace

std::vector<std::string> payload_lines(const LoadgenOptions& options, std::string& error) {
    std::vector<std::string> lines;
    if (!options.file.empty()) {
        std::ifstream in(options.file, std::ios::binary);
        if (!in) {
            error = "cannot read --file " + options.file;
            return lines;
        }
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        lines = split_lines(text);
    } else if (options.payload == LoadgenOptions::Payload::templates) {
        lines = make_template_events(options.seed, template_pool_events);
    } else if (options.payload == LoadgenOptions::Payload::breach_853b) {
        lines = split_lines(std::string_view(loadgen_breach_853b, loadgen_breach_853b_size));
    } else {
        lines = split_lines(std::string_view(loadgen_samples, loadgen_samples_size));
    }
    if (lines.empty() && error.empty()) error = "no lines to send";
    for (const std::string& line : lines) {
        if (line.size() > line_bytes_max) {
            error = "a line of " + std::to_string(line.size()) + " bytes is longer than " +
                    std::to_string(line_bytes_max);
            lines.clear();
            break;
        }
    }
    return lines;
}

}  // namespace cefd::loadgen
