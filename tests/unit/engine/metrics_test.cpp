#include "engine/metrics/metrics.h"

#include <limits>

#include <gtest/gtest.h>

namespace cefd {
namespace {

TEST(MetricsRegistry, RendersPrometheusTextGroupedByName) {
    MetricsRegistry registry;
    Counter lane0{3};
    Counter lane1{4};
    Counter other{1};
    registry.add("receive_datagrams_total", "Datagrams received.", "lane=\"0\"", &lane0);
    registry.add("spool_bytes", "Bytes.", "", &other, MetricsRegistry::Kind::gauge);
    registry.add("receive_datagrams_total", "Datagrams received.", "lane=\"1\"", &lane1);
    const std::string text = registry.render();
    EXPECT_NE(text.find("# TYPE cefd_receive_datagrams_total counter\n"
                        "cefd_receive_datagrams_total{lane=\"0\"} 3\n"
                        "cefd_receive_datagrams_total{lane=\"1\"} 4\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("# TYPE cefd_spool_bytes gauge\ncefd_spool_bytes 1\n"), std::string::npos) << text;
    EXPECT_EQ(registry.value("receive_datagrams_total"), 7);
    EXPECT_EQ(registry.value("receive_datagrams_total", "lane=\"1\""), 4);
}

TEST(MetricsRegistry, ReadsComputedGaugesWhenScraped) {
    MetricsRegistry registry;
    double depth = 1;
    registry.add_gauge("queue_depth", "Depth.", "", [&] { return depth; });
    depth = 42;
    EXPECT_NE(registry.render().find("cefd_queue_depth 42\n"), std::string::npos);
}

// The exposition format spells the special values NaN, +Inf and -Inf (OpenMetrics requires
// exactly these); std::to_chars wrote nan, inf and -inf, which strict parsers refuse, failing
// the whole scrape. Found in review.
TEST(MetricsRegistry, SpellsNonFiniteGaugesAsTheExpositionFormatDoes) {
    MetricsRegistry registry;
    registry.add_gauge("a_ratio", "A.", "", [] { return std::numeric_limits<double>::quiet_NaN(); });
    registry.add_gauge("b_seconds", "B.", "", [] { return std::numeric_limits<double>::infinity(); });
    registry.add_gauge("c_seconds", "C.", "", [] { return -std::numeric_limits<double>::infinity(); });
    const std::string text = registry.render();
    EXPECT_NE(text.find("cefd_a_ratio NaN\n"), std::string::npos) << text;
    EXPECT_NE(text.find("cefd_b_seconds +Inf\n"), std::string::npos) << text;
    EXPECT_NE(text.find("cefd_c_seconds -Inf\n"), std::string::npos) << text;
}

TEST(MetricsRegistry, RendersHistogramBucketsCumulatively) {
    MetricsRegistry registry;
    Histogram rows{10, 100, 1000};
    registry.add_histogram("batch_size_rows", "Rows per batch.", "lane=\"0\"", &rows);
    rows.observe(1);
    rows.observe(10);  // le is inclusive: this one is in the 10 bucket
    rows.observe(50);
    rows.observe(5000);
    const std::string text = registry.render();
    EXPECT_NE(text.find("# HELP cefd_batch_size_rows Rows per batch.\n"
                        "# TYPE cefd_batch_size_rows histogram\n"
                        "cefd_batch_size_rows_bucket{lane=\"0\",le=\"10\"} 2\n"
                        "cefd_batch_size_rows_bucket{lane=\"0\",le=\"100\"} 3\n"
                        "cefd_batch_size_rows_bucket{lane=\"0\",le=\"1000\"} 3\n"
                        "cefd_batch_size_rows_bucket{lane=\"0\",le=\"+Inf\"} 4\n"
                        "cefd_batch_size_rows_sum{lane=\"0\"} 5061\n"
                        "cefd_batch_size_rows_count{lane=\"0\"} 4\n"),
              std::string::npos)
        << text;
    EXPECT_EQ(registry.value("batch_size_rows"), 4);
}

TEST(MetricsRegistry, RendersUnlabelledHistogramWithOnlyLe) {
    MetricsRegistry registry;
    Histogram seconds{0.005, 0.25};
    registry.add_histogram("send_request_seconds", "Latency.", "", &seconds);
    seconds.observe(0.1);
    const std::string text = registry.render();
    EXPECT_NE(text.find("cefd_send_request_seconds_bucket{le=\"0.005\"} 0\n"
                        "cefd_send_request_seconds_bucket{le=\"0.25\"} 1\n"
                        "cefd_send_request_seconds_bucket{le=\"+Inf\"} 1\n"
                        "cefd_send_request_seconds_sum 0.1\n"
                        "cefd_send_request_seconds_count 1\n"),
              std::string::npos)
        << text;
}

TEST(MetricsRegistry, SumsSeriesWhoseLabelsIncludeTheWantedPairs) {
    MetricsRegistry registry;
    Counter a{1};
    Counter b{2};
    Counter c{4};
    registry.add("receive_dropped_total", "Drops.", "lane=\"0\",reason=\"oversize\"", &a);
    registry.add("receive_dropped_total", "Drops.", "lane=\"1\",reason=\"oversize\"", &b);
    registry.add("receive_dropped_total", "Drops.", "lane=\"1\",reason=\"ring_full\"", &c);
    EXPECT_EQ(registry.value("receive_dropped_total", "reason=\"oversize\""), 3);
    EXPECT_EQ(registry.value("receive_dropped_total", "lane=\"1\""), 6);
    EXPECT_EQ(registry.value("receive_dropped_total", "reason=\"ring_full\",lane=\"1\""), 4);
    EXPECT_EQ(registry.value("receive_dropped_total", "reason=\"ring\""), 0);  // a whole value, not a prefix
    EXPECT_TRUE(registry.has("receive_dropped_total", "reason=\"oversize\""));
    EXPECT_FALSE(registry.has("receive_dropped_total", "reason=\"kernel\""));
    EXPECT_FALSE(registry.has("receive_oversize_total"));
}

TEST(MetricsRegistryDeathTest, RefusesCounterWithoutTotalSuffix) {
    MetricsRegistry registry;
    Counter counter{0};
    EXPECT_DEATH(registry.add("batch_rows", "Rows.", "", &counter), "must end in _total");
}

TEST(MetricsRegistryDeathTest, RefusesGaugeWithTotalSuffix) {
    MetricsRegistry registry;
    EXPECT_DEATH(registry.add_gauge("spool_pending_total", "Pending.", "", [] { return 0.0; }), "must end in _total");
}

TEST(MetricsRegistryDeathTest, RefusesFamilyWithTwoHelpTexts) {
    MetricsRegistry registry;
    Counter lane0{0};
    Counter lane1{0};
    registry.add("worker_messages_total", "Messages.", "lane=\"0\"", &lane0);
    EXPECT_DEATH(registry.add("worker_messages_total", "Other text.", "lane=\"1\"", &lane1),
                 "different HELP or TYPE");
}

TEST(MetricsRegistryDeathTest, RefusesFamilyWithTwoTypes) {
    MetricsRegistry registry;
    registry.add_gauge("ring_used_bytes", "Bytes.", "lane=\"0\"", [] { return 0.0; });
    Histogram histogram{1};
    EXPECT_DEATH(registry.add_histogram("ring_used_bytes", "Bytes.", "lane=\"2\"", &histogram),
                 "different HELP or TYPE");
}

TEST(MetricsRegistryDeathTest, RefusesTheSameSeriesTwice) {
    MetricsRegistry registry;
    Counter value{0};
    registry.add("worker_messages_total", "Messages.", "lane=\"0\"", &value);
    EXPECT_DEATH(registry.add("worker_messages_total", "Messages.", "lane=\"0\"", &value), "registered twice");
}

TEST(MetricsRegistryDeathTest, RefusesPrefixedOrBadNames) {
    MetricsRegistry registry;
    Counter value{0};
    EXPECT_DEATH(registry.add("cefd_rows_total", "Rows.", "", &value), "not a metric name");
    EXPECT_DEATH(registry.add("Rows-total", "Rows.", "", &value), "not a metric name");
}

TEST(Histogram, CountsEachObservationInExactlyOneBucket) {
    Histogram histogram{1, 2, 4};
    for (const double v : {0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 4.5, 100.0}) histogram.observe(v);
    EXPECT_EQ(histogram.bucket(0), 2U);  // <= 1
    EXPECT_EQ(histogram.bucket(1), 2U);  // (1, 2]
    EXPECT_EQ(histogram.bucket(2), 2U);  // (2, 4]
    EXPECT_EQ(histogram.bucket(3), 2U);  // +Inf
    EXPECT_EQ(histogram.count(), 8U);
    EXPECT_DOUBLE_EQ(histogram.sum(), 116.5);
}

TEST(SummaryLine, PrintsRegisteredSeriesByGroup) {
    MetricsRegistry registry;
    Counter udp{5};
    Counter lane0{1};
    Counter lane1{2};
    registry.add("receive_datagrams_total", "Datagrams.", "lane=\"0\"", &udp);
    registry.add("receive_dropped_total", "Drops.", "lane=\"0\",reason=\"oversize\"", &lane0);
    registry.add("receive_dropped_total", "Drops.", "lane=\"1\",reason=\"oversize\"", &lane1);
    const SummaryLine line(registry, {{"received", {{"udp", "receive_datagrams_total"}}},
                                      {"drops", {{"oversize", "receive_dropped_total", "reason=\"oversize\""}}}});
    EXPECT_EQ(line.render(), "received udp=5 | drops oversize=3");
    udp = 6;
    EXPECT_EQ(line.render(), "received udp=6 | drops oversize=3");
}

TEST(SummaryLineDeathTest, RefusesAFieldNoStageRegistered) {
    MetricsRegistry registry;
    Counter udp{5};
    registry.add("receive_datagrams_total", "Datagrams.", "", &udp);
    EXPECT_DEATH(SummaryLine(registry, {{"received", {{"udp", "receive_udp_datagrams_total"}}}}),
                 "which no stage registered");
}

}  // namespace
}  // namespace cefd
