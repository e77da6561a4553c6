#include "engine/metrics/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "engine/log.h"

namespace cefd {

Histogram::Histogram(std::initializer_list<double> upper_bounds)
    : Histogram(std::span<const double>(upper_bounds.begin(), upper_bounds.size())) {}

Histogram::Histogram(std::span<const double> upper_bounds)
    : bounds_(upper_bounds.begin(), upper_bounds.end()),
      counts_(std::make_unique<Counter[]>(upper_bounds.size() + 1)) {
    CEFD_ASSERT(!bounds_.empty());
    CEFD_ASSERT(std::adjacent_find(bounds_.begin(), bounds_.end(), std::greater_equal<>()) == bounds_.end());
    CEFD_ASSERT(std::isfinite(bounds_.back()));
}

std::uint64_t Histogram::count() const noexcept {
    std::uint64_t n = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) n += read(counts_[i]);
    return n;
}

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool valid_name(std::string_view name) {
    if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

/// True if `labels` ("k=\"v\",k2=\"v2\"") holds every pair of `wanted` (same syntax).
bool labels_match(std::string_view labels, std::string_view wanted) {
    while (!wanted.empty()) {
        // Our label values never hold a comma (they are lane numbers and reason words).
        const std::size_t comma = wanted.find(',');
        const std::string_view pair = wanted.substr(0, comma);
        wanted = comma == std::string_view::npos ? std::string_view{} : wanted.substr(comma + 1);
        bool found = false;
        for (std::size_t at = labels.find(pair); at != std::string_view::npos; at = labels.find(pair, at + 1)) {
            const bool starts = at == 0 || labels[at - 1] == ',';
            const bool ends = at + pair.size() == labels.size() || labels[at + pair.size()] == ',';
            if (starts && ends) {
                found = true;
                break;
            }
        }
        if (!found) return false;
    }
    return true;
}

void append_number(std::string& out, double value) {
    // The exposition format's spellings (to_chars would write nan, inf, -inf).
    if (std::isnan(value)) {
        out += "NaN";
        return;
    }
    if (std::isinf(value)) {
        out += value > 0 ? "+Inf" : "-Inf";
        return;
    }
    char number[32];
    const auto result = std::to_chars(number, number + sizeof number, value);  // shortest round-trip
    out.append(number, result.ptr);
}

void append_number(std::string& out, std::uint64_t value) {
    char number[24];
    const auto result = std::to_chars(number, number + sizeof number, value);
    out.append(number, result.ptr);
}

const char* type_name(MetricsRegistry::Kind kind) {
    switch (kind) {
        case MetricsRegistry::Kind::counter: return "counter";
        case MetricsRegistry::Kind::gauge: return "gauge";
        case MetricsRegistry::Kind::histogram: return "histogram";
    }
    return "untyped";
}

}  // namespace

void MetricsRegistry::add(std::string_view name, std::string_view help, std::string labels,
                          const Counter* value, Kind kind) {
    CEFD_ASSERT(value != nullptr && kind != Kind::histogram);
    add_series({std::string(name), std::string(help), std::move(labels), kind, value, {}, nullptr});
}

void MetricsRegistry::add_gauge(std::string_view name, std::string_view help, std::string labels,
                                std::function<double()> value) {
    CEFD_ASSERT(value != nullptr);
    add_series({std::string(name), std::string(help), std::move(labels), Kind::gauge, nullptr, std::move(value), nullptr});
}

void MetricsRegistry::add_histogram(std::string_view name, std::string_view help, std::string labels,
                                    const Histogram* value) {
    CEFD_ASSERT(value != nullptr);
    add_series({std::string(name), std::string(help), std::move(labels), Kind::histogram, nullptr, {}, value});
}

void MetricsRegistry::add_series(Series series) {
    // Each rule logs the offending name first: CEFD_ASSERT alone would only print the condition.
    const std::string_view name = series.name;
    const bool named_well = valid_name(name) && !name.starts_with("cefd_");
    if (!named_well) CEFD_LOG(error, "metrics: \"%s\" is not a metric name (lower_snake_case, no cefd_ prefix)", series.name.c_str());
    CEFD_ASSERT(named_well);
    const bool counter_total = (series.kind == Kind::counter) == ends_with(name, "_total");
    if (!counter_total) CEFD_LOG(error, "metrics: %s: a counter family must end in _total, and only a counter", series.name.c_str());
    CEFD_ASSERT(counter_total);
    const bool histogram_suffix = series.kind == Kind::histogram &&
                                  (ends_with(name, "_bucket") || ends_with(name, "_sum") || ends_with(name, "_count"));
    if (histogram_suffix) CEFD_LOG(error, "metrics: %s: a histogram name must not end in _bucket, _sum or _count", series.name.c_str());
    CEFD_ASSERT(!histogram_suffix);

    std::lock_guard lock(mutex_);
    for (const Series& s : series_) {
        if (s.name != series.name) continue;
        const bool same_family = s.help == series.help && s.kind == series.kind;
        if (!same_family) CEFD_LOG(error, "metrics: %s registered twice with a different HELP or TYPE", series.name.c_str());
        CEFD_ASSERT(same_family);
        const bool duplicate = s.labels == series.labels;
        if (duplicate) CEFD_LOG(error, "metrics: %s{%s} registered twice", series.name.c_str(), series.labels.c_str());
        CEFD_ASSERT(!duplicate);
    }
    series_.push_back(std::move(series));
}

namespace {

double current(const auto& s) {
    if (s.counter != nullptr) return static_cast<double>(read(*s.counter));
    if (s.histogram != nullptr) return static_cast<double>(s.histogram->count());
    return s.gauge();
}

}  // namespace

std::string MetricsRegistry::render() const {
    std::lock_guard lock(mutex_);
    std::string out;
    out.reserve(series_.size() * 128);
    // Series with the same name must be contiguous in the exposition format, so group by name
    // in registration order of first appearance.
    std::set<std::string_view> described;
    std::vector<const Series*> order;
    for (const auto& s : series_) {
        if (described.insert(s.name).second) {
            for (const auto& t : series_)
                if (t.name == s.name) order.push_back(&t);
        }
    }
    const Series* last = nullptr;
    for (const Series* s : order) {
        if (last == nullptr || s->name != last->name) {
            out += "# HELP cefd_" + s->name + " " + s->help + "\n";
            out += "# TYPE cefd_" + s->name + " " + type_name(s->kind) + "\n";
            last = s;
        }
        if (s->kind != Kind::histogram) {
            out += "cefd_" + s->name;
            if (!s->labels.empty()) out += "{" + s->labels + "}";
            out += ' ';
            if (s->counter != nullptr) append_number(out, read(*s->counter));
            else append_number(out, s->gauge());
            out += '\n';
            continue;
        }
        const Histogram& h = *s->histogram;
        const std::string prefix = s->labels.empty() ? "{le=\"" : "{" + s->labels + ",le=\"";
        std::uint64_t cumulative = 0;
        const auto bounds = h.upper_bounds();
        for (std::size_t i = 0; i <= bounds.size(); ++i) {
            cumulative += h.bucket(i);
            out += "cefd_" + s->name + "_bucket" + prefix;
            if (i < bounds.size()) append_number(out, bounds[i]);
            else out += "+Inf";
            out += "\"} ";
            append_number(out, cumulative);
            out += '\n';
        }
        const std::string labels = s->labels.empty() ? "" : "{" + s->labels + "}";
        out += "cefd_" + s->name + "_sum" + labels + " ";
        append_number(out, h.sum());
        out += "\ncefd_" + s->name + "_count" + labels + " ";
        append_number(out, cumulative);  // the +Inf bucket, by definition
        out += '\n';
    }
    return out;
}

double MetricsRegistry::value(std::string_view name, std::string_view labels) const {
    std::lock_guard lock(mutex_);
    double sum = 0;
    for (const auto& s : series_) {
        if (s.name == name && labels_match(s.labels, labels)) sum += current(s);
    }
    return sum;
}

bool MetricsRegistry::has(std::string_view name, std::string_view labels) const {
    std::lock_guard lock(mutex_);
    return std::any_of(series_.begin(), series_.end(),
                       [&](const Series& s) { return s.name == name && labels_match(s.labels, labels); });
}

SummaryLine::SummaryLine(const MetricsRegistry& registry, std::vector<Group> groups)
    : registry_(registry), groups_(std::move(groups)) {
    for (const Group& group : groups_) {
        for (const Field& field : group.fields) {
            const bool registered = registry_.has(field.family, field.labels);
            if (!registered) {
                CEFD_LOG(error, "summary line: %.*s reads %.*s{%.*s}, which no stage registered (renamed?)",
                         static_cast<int>(field.key.size()), field.key.data(), static_cast<int>(field.family.size()),
                         field.family.data(), static_cast<int>(field.labels.size()), field.labels.data());
            }
            CEFD_ASSERT(registered);
        }
    }
}

std::string SummaryLine::render() const {
    std::string line;
    line.reserve(512);
    for (const Group& group : groups_) {
        if (!line.empty()) line += " | ";
        line += group.title;
        for (const Field& field : group.fields) {
            if (!line.empty() && line.back() != ' ') line += ' ';
            line += field.key;
            line += '=';
            append_number(line, static_cast<std::uint64_t>(registry_.value(field.family, field.labels)));
        }
    }
    return line;
}

}  // namespace cefd
