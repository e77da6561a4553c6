#include "engine/metrics/metrics.h"

#include <cstdio>
#include <set>

namespace cefd {

void MetricsRegistry::add(std::string_view name, std::string_view help, std::string labels,
                          const Counter* value, Kind kind) {
    std::lock_guard lock(mutex_);
    series_.push_back({std::string(name), std::string(help), std::move(labels), kind, value, {}});
}

void MetricsRegistry::add_gauge(std::string_view name, std::string_view help, std::string labels,
                                std::function<double()> value) {
    std::lock_guard lock(mutex_);
    series_.push_back(
        {std::string(name), std::string(help), std::move(labels), Kind::gauge, nullptr, std::move(value)});
}

namespace {
double current(const auto& s) {
    return s.counter != nullptr ? static_cast<double>(read(*s.counter)) : s.gauge();
}
}  // namespace

std::string MetricsRegistry::render() const {
    std::lock_guard lock(mutex_);
    std::string out;
    out.reserve(series_.size() * 96);
    std::set<std::string> described;
    // Series with the same name must be contiguous in the exposition format, so group by name
    // in registration order of first appearance.
    std::vector<const Series*> order;
    for (const auto& s : series_) {
        if (described.insert(s.name).second) {
            for (const auto& t : series_)
                if (t.name == s.name) order.push_back(&t);
        }
    }
    std::string last;
    char number[64];
    for (const Series* s : order) {
        if (s->name != last) {
            out += "# HELP cefd_" + s->name + " " + s->help + "\n";
            out += "# TYPE cefd_" + s->name + (s->kind == Kind::counter ? " counter\n" : " gauge\n");
            last = s->name;
        }
        out += "cefd_" + s->name;
        if (!s->labels.empty()) out += "{" + s->labels + "}";
        std::snprintf(number, sizeof number, " %.17g\n", current(*s));
        out += number;
    }
    return out;
}

double MetricsRegistry::value(std::string_view name, std::string_view labels) const {
    std::lock_guard lock(mutex_);
    double sum = 0;
    for (const auto& s : series_) {
        if (s.name != name) continue;
        if (!labels.empty() && s.labels != labels) continue;
        sum += current(s);
    }
    return sum;
}

}  // namespace cefd
