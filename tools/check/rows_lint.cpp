// tools/check/rows_lint.cpp: the row linter behind `cefd-check` and `cefd check rows` (one
// implementation, two entry points). It reads CommonSecurityLog rows, one JSON object per line
// (the stand-in's --out file, `cefd parse` output, or rows exported from Log Analytics as JSON
// lines), and reports every row that the Microsoft Sentinel "AI Analyst Darktrace" solution
// would not show correctly.
//
// The rules are what the solution's workbook and connectors read (the reference in
// docs: cef-commonsecuritylog.md section 6.3):
//   error   vendor            DeviceVendor is not exactly "Darktrace" (the queries use ==)
//   error   severity          LogSeverity is not an integer: toint(LogSeverity) is null, the row drops out of every tile
//   error   collector         CollectorHostName is empty: the AMA connector shows as disconnected
//   error   time              TimeGenerated is missing
//   error   activity          Activity is empty
//   warning product           DeviceProduct is neither "Enterprise Immune System" nor "AI Analyst"
//   warning last_key          darktraceUrl/message/groupingId/groupByActivity/long/lat is the last pair of
//                             AdditionalExtensions: the workbook's `parse ... ";"` needs a ';' after it
//   warning aiincident        an AI Analyst row whose darktraceUrl has no #aiincident/
// Rows whose DeviceVendor is not Darktrace in any case are skipped (counted as other_vendor).
//
// Usage: cefd-check [--quiet] [FILE...], or cefd check rows [--quiet] [FILE...]   (stdin when no FILE)
// Output: one line per problem (unless --quiet), then a JSON summary. Exit 0 when no errors,
// 1 when any row has an error, 2 on bad usage or unreadable input.
#include "tools/check/rows_lint.h"

#include <simdjson.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace cefd {
namespace {

struct Totals {
    std::size_t rows = 0;
    std::size_t darktrace_rows = 0;
    std::size_t other_vendor = 0;
    std::size_t invalid_json = 0;
    std::size_t rows_with_errors = 0;
    std::map<std::string, std::size_t> errors;
    std::map<std::string, std::size_t> warnings;
};

std::string_view field(simdjson::dom::object row, std::string_view name) {
    std::string_view value;
    if (row[name].get(value) != simdjson::SUCCESS) return {};
    return value;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
    return true;
}

/// KQL toint() on a string: optional sign, digits, nothing else.
bool kql_toint_works(std::string_view s) {
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

/// The value of `key=` in AdditionalExtensions, and whether a ';' follows it.
bool find_pair(std::string_view extensions, std::string_view key, bool& followed_by_separator,
               std::string_view& value) {
    std::size_t at = 0;
    while ((at = extensions.find(key, at)) != std::string_view::npos) {
        const bool starts_pair = at == 0 || extensions[at - 1] == ';';
        const std::size_t after = at + key.size();
        if (starts_pair && after < extensions.size() && extensions[after] == '=') {
            const std::size_t end = extensions.find(';', after + 1);
            followed_by_separator = end != std::string_view::npos;
            value = extensions.substr(after + 1, end == std::string_view::npos ? std::string_view::npos : end - after - 1);
            return true;
        }
        at = after;
    }
    return false;
}

void check_row(simdjson::dom::object row, std::size_t line_number, bool quiet, Totals& totals) {
    const std::string_view vendor = field(row, "DeviceVendor");
    if (!equals_ignoring_case(vendor, "Darktrace")) {
        ++totals.other_vendor;
        return;
    }
    ++totals.darktrace_rows;
    bool has_error = false;
    auto problem = [&](bool is_error, const char* rule, const std::string& detail) {
        (is_error ? totals.errors : totals.warnings)[rule]++;
        has_error = has_error || is_error;
        if (!quiet)
            std::printf("line %zu: %s %s: %s\n", line_number, is_error ? "error" : "warning", rule, detail.c_str());
    };

    if (vendor != "Darktrace")
        problem(true, "vendor", "DeviceVendor is \"" + std::string(vendor) + "\"; the solution's queries compare with == \"Darktrace\"");
    const std::string_view severity = field(row, "LogSeverity");
    if (!kql_toint_works(severity))
        problem(true, "severity", "LogSeverity \"" + std::string(severity) + "\" is not an integer; toint() gives null");
    if (field(row, "CollectorHostName").empty())
        problem(true, "collector", "CollectorHostName is empty; the AMA connector counts such rows as disconnected");
    if (field(row, "TimeGenerated").empty()) problem(true, "time", "TimeGenerated is missing");
    if (field(row, "Activity").empty()) problem(true, "activity", "Activity is empty");

    const std::string_view product = field(row, "DeviceProduct");
    if (product != "Enterprise Immune System" && product != "AI Analyst")
        problem(false, "product", "DeviceProduct \"" + std::string(product) + "\" is on no workbook tab");

    const std::string_view extensions = field(row, "AdditionalExtensions");
    for (const char* key : {"darktraceUrl", "message", "groupingId", "groupByActivity", "long", "lat"}) {
        bool separated = false;
        std::string_view value;
        if (find_pair(extensions, key, separated, value) && !separated)
            problem(false, "last_key", std::string(key) + " is the last pair of AdditionalExtensions; `parse ... \"" +
                                           key + "=\" X \";\"` finds nothing");
    }
    if (product == "AI Analyst") {
        bool separated = false;
        std::string_view url;
        if (find_pair(extensions, "darktraceUrl", separated, url) && url.find("#aiincident/") == std::string_view::npos)
            problem(false, "aiincident", "AI Analyst darktraceUrl has no #aiincident/ part");
    }
    if (has_error) ++totals.rows_with_errors;
}

bool check_stream(std::FILE* in, bool quiet, Totals& totals) {
    simdjson::dom::parser parser;
    char* line = nullptr;
    std::size_t capacity = 0;
    ssize_t length = 0;
    std::size_t line_number = 0;
    while ((length = ::getline(&line, &capacity, in)) >= 0) {
        ++line_number;
        std::string_view text(line, static_cast<std::size_t>(length));
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
        if (text.empty()) continue;
        ++totals.rows;
        simdjson::dom::object row;
        if (parser.parse(text.data(), text.size()).get(row) != simdjson::SUCCESS) {
            ++totals.invalid_json;
            if (!quiet) std::printf("line %zu: error json: not a JSON object\n", line_number);
            continue;
        }
        check_row(row, line_number, quiet, totals);
    }
    std::free(line);
    return true;
}

void print_counts(const char* name, const std::map<std::string, std::size_t>& counts) {
    std::printf(",\"%s\":{", name);
    bool first = true;
    for (const auto& [rule, count] : counts) {
        std::printf("%s\"%s\":%zu", first ? "" : ",", rule.c_str(), count);
        first = false;
    }
    std::printf("}");
}

}  // namespace

int rows_lint(const std::vector<std::string>& args, const char* program) {
    bool quiet = false;
    std::vector<std::string> files;
    for (const std::string& arg : args) {
        if (arg == "--quiet") {
            quiet = true;
        } else if (arg == "--help" || arg == "-h" || (arg.size() > 1 && arg[0] == '-')) {
            std::fprintf(stderr, "usage: %s [--quiet] [FILE...]\n", program);
            return 2;
        } else {
            files.push_back(arg);
        }
    }
    Totals totals;
    if (files.empty()) {
        check_stream(stdin, quiet, totals);
    } else {
        for (const auto& path : files) {
            std::FILE* in = std::fopen(path.c_str(), "r");
            if (in == nullptr) {
                std::fprintf(stderr, "%s: cannot open %s: %s\n", program, path.c_str(), std::strerror(errno));
                return 2;
            }
            check_stream(in, quiet, totals);
            std::fclose(in);
        }
    }
    std::printf("{\"rows\":%zu,\"darktrace_rows\":%zu,\"other_vendor\":%zu,\"invalid_json\":%zu,\"rows_with_errors\":%zu",
                totals.rows, totals.darktrace_rows, totals.other_vendor, totals.invalid_json, totals.rows_with_errors);
    print_counts("errors", totals.errors);
    print_counts("warnings", totals.warnings);
    std::printf("}\n");
    return (totals.rows_with_errors > 0 || totals.invalid_json > 0) ? 1 : 0;
}

}  // namespace cefd
