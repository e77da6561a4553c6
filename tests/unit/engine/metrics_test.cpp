#include "engine/metrics/metrics.h"

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

}  // namespace
}  // namespace cefd
