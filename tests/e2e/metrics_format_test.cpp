// /metrics of a real cefd (after real traffic) checked by a real parser: python3-prometheus-
// client's text parser, plus the conventions it does not enforce (HELP and TYPE for every family,
// each family once, counters end in _total, histograms cumulative with +Inf = _count).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace cefd::test {
namespace {

using namespace std::chrono_literals;

// Reads the exposition on stdin; prints "ok <families>" or the problems, one a line. Each
// argument names a histogram family that must be there with _bucket, _sum and a nonzero _count.
constexpr const char* checker = R"PY(
import collections, re, sys
from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
problems = []
help_of, type_of, order = {}, {}, []
for line in text.splitlines():
    if line.startswith('# HELP '):
        name = line.split(' ', 3)[2]
        if name in help_of: problems.append('HELP twice: ' + name)
        help_of[name] = line
        order.append(name)
    elif line.startswith('# TYPE '):
        _, _, name, kind = line.split(' ', 3)
        if name in type_of: problems.append('TYPE twice: ' + name)
        type_of[name] = kind
    elif line and not line.startswith('#'):
        sample = re.split(r'[{ ]', line, 1)[0]
        family = re.sub(r'_(bucket|sum|count)$', '', sample) if re.sub(r'_(bucket|sum|count)$', '', sample) in type_of else sample
        if family not in type_of: problems.append('sample without TYPE: ' + line)
        if family not in help_of: problems.append('sample without HELP: ' + line)
        if not family.startswith('cefd_'): problems.append('no cefd_ prefix: ' + line)
for name, kind in type_of.items():
    if kind not in ('counter', 'gauge', 'histogram'): problems.append('unexpected type %s %s' % (name, kind))
    if (kind == 'counter') != name.endswith('_total'): problems.append('_total only and always on counters: ' + name)

families = list(text_string_to_metric_families(text))
seen = collections.Counter(f.name for f in families)
for name, n in seen.items():
    if n > 1: problems.append('family split in %d blocks: %s' % (n, name))
for f in families:
    if f.type == 'untyped': problems.append('untyped: ' + f.name)
    if f.type != 'histogram': continue
    series = collections.defaultdict(dict)
    for s in f.samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != 'le'))
        if s.name.endswith('_bucket'): series[key].setdefault('buckets', []).append((float(s.labels['le']), s.value))
        else: series[key][s.name[len(f.name):]] = s.value
    for key, parts in series.items():
        buckets = parts.get('buckets', [])
        if not buckets or buckets[-1][0] != float('inf'): problems.append('no +Inf bucket: %s %s' % (f.name, key))
        if [b for b, _ in buckets] != sorted(b for b, _ in buckets): problems.append('le out of order: ' + f.name)
        values = [v for _, v in buckets]
        if values != sorted(values): problems.append('buckets not cumulative: %s %s' % (f.name, key))
        if '_count' not in parts or '_sum' not in parts: problems.append('no _sum/_count: ' + f.name)
        elif buckets and parts['_count'] != buckets[-1][1]: problems.append('_count != +Inf: %s %s' % (f.name, key))
for name in sys.argv[1:]:
    found = [f for f in families if f.name == name]
    if not found or found[0].type != 'histogram':
        problems.append('histogram missing: ' + name)
        continue
    kinds = collections.Counter(s.name[len(name):] for s in found[0].samples)
    if not (kinds['_bucket'] >= 2 and kinds['_sum'] >= 1 and kinds['_count'] >= 1):
        problems.append('histogram without _bucket/_sum/_count: %s %s' % (name, dict(kinds)))
    if sum(s.value for s in found[0].samples if s.name == name + '_count') <= 0:
        problems.append('histogram never observed: ' + name)
info = [f for f in families if f.name == 'cefd_build_info']
if not info or set(info[0].samples[0].labels) != {'version', 'commit'} or info[0].samples[0].value != 1:
    problems.append('cefd_build_info{version,commit} 1 missing')
print('\n'.join(problems) if problems else 'ok %d' % len(families))
)PY";

/// A python3 that can import prometheus_client, or "" (Debian: python3-prometheus-client, in
/// scripts/install-deps; a pyenv or venv python3 first on PATH may not see it).
std::string python_with_parser() {
    for (const char* python : {"python3", "/usr/bin/python3"}) {
        if (run_command(std::string(python) + " -c 'import prometheus_client.parser' 2>/dev/null") == 0) return python;
    }
    return "";
}

TEST(MetricsFormat, RealScrapePassesThePrometheusParser) {
    const std::string python = python_with_parser();
    if (python.empty()) GTEST_SKIP() << "no python3 with prometheus_client (apt-get install python3-prometheus-client)";
    TempDir dir;
    AzureStandin azure(dir);
    Cefd cefd(dir, azure);
    // Traffic first, so counters and histograms hold real values.
    const std::vector<std::string> lines = sample_lines(source_path("tests/data/synthetic-darktrace-cef.log"));
    send_udp(cefd.port(), lines);
    ASSERT_TRUE(wait_until(30s, [&] { return azure.row_count() >= lines.size(); }))
        << "rows delivered: " << azure.row_count() << " of " << lines.size();
    ASSERT_TRUE(wait_until(10s, [&] { return cefd.metric("cefd_batch_size_rows_count") >= 1; }));
    // The stand-in's 204 is observed just after the rows are stored; once nothing is in flight,
    // every request started has been observed exactly once.
    ASSERT_TRUE(wait_until(10s, [&] {
        const double observed = cefd.metric("cefd_send_request_duration_seconds_count");
        return observed >= 1 && cefd.metric("cefd_send_in_flight") == 0 &&
               observed == cefd.metric("cefd_send_requests_total");
    })) << "observed " << cefd.metric("cefd_send_request_duration_seconds_count") << " of "
        << cefd.metric("cefd_send_requests_total") << " requests";

    const std::string body = http_get(cefd.metrics_port(), "/metrics");
    ASSERT_NE(body.find("# TYPE cefd_batch_size_rows histogram\n"), std::string::npos) << body;
    write_file(dir.file("scrape.txt"), body);
    write_file(dir.file("check.py"), checker);
    std::string verdict;
    const int rc = run_command(python + " " + dir.file("check.py") +
                                   " cefd_batch_size_rows cefd_send_request_duration_seconds < " + dir.file("scrape.txt") +
                                   " 2>&1", &verdict);
    EXPECT_EQ(rc, 0) << verdict;
    EXPECT_EQ(verdict.rfind("ok ", 0), 0U) << verdict << "\n--- scrape ---\n" << body;
}

TEST(MetricsFormat, CheckerCatchesWhatItClaimsTo) {
    const std::string python = python_with_parser();
    if (python.empty()) GTEST_SKIP() << "no python3 with prometheus_client (apt-get install python3-prometheus-client)";
    TempDir dir;
    write_file(dir.file("check.py"), checker);
    const std::string bad =
        "# HELP cefd_rows Rows.\n# TYPE cefd_rows counter\ncefd_rows 1\n"
        "cefd_untyped 2\n"
        "# HELP cefd_h H.\n# TYPE cefd_h histogram\ncefd_h_bucket{le=\"1\"} 3\ncefd_h_bucket{le=\"+Inf\"} 2\n"
        "cefd_h_sum 1\ncefd_h_count 2\n";
    write_file(dir.file("bad.txt"), bad);
    std::string verdict;
    run_command(python + " " + dir.file("check.py") + " cefd_h cefd_absent < " + dir.file("bad.txt") + " 2>&1", &verdict);
    EXPECT_NE(verdict.find("_total only and always on counters: cefd_rows"), std::string::npos) << verdict;
    EXPECT_NE(verdict.find("sample without TYPE: cefd_untyped 2"), std::string::npos) << verdict;
    EXPECT_NE(verdict.find("buckets not cumulative"), std::string::npos) << verdict;
    EXPECT_NE(verdict.find("cefd_build_info{version,commit} 1 missing"), std::string::npos) << verdict;
    EXPECT_NE(verdict.find("histogram missing: cefd_absent"), std::string::npos) << verdict;
    EXPECT_EQ(verdict.find("histogram missing: cefd_h\n"), std::string::npos) << verdict;

    // A histogram that is there but never observed.
    write_file(dir.file("empty.txt"), "# HELP cefd_e E.\n# TYPE cefd_e histogram\ncefd_e_bucket{le=\"1\"} 0\n"
                                      "cefd_e_bucket{le=\"+Inf\"} 0\ncefd_e_sum 0\ncefd_e_count 0\n");
    run_command(python + " " + dir.file("check.py") + " cefd_e < " + dir.file("empty.txt") + " 2>&1", &verdict);
    EXPECT_NE(verdict.find("histogram never observed: cefd_e"), std::string::npos) << verdict;
}

}  // namespace
}  // namespace cefd::test
