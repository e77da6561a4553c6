// parse() allocates nothing per message (STYLE.md §5). Global operator new is replaced with a
// counting one; after construction and a warm-up, 10,000 sample lines must not call it once.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "engine/row/row_json.h"
#include "stages/parse/parse.h"
#include "tests/support/counting_new.h"
#include "tests/support/support.h"

namespace {
std::atomic<std::uint64_t> allocations{0};
}

void cefd_test_on_allocation() noexcept { allocations.fetch_add(1, std::memory_order_relaxed); }

namespace cefd {
namespace {

TEST(ParserAllocation, ParsesAndEncodesTenThousandSamplesWithoutAllocating) {
    std::vector<std::string> lines;
    for (const char* file : {"tests/data/synthetic-darktrace-cef.log", "tests/data/WithSecureViaConnectorSampleData.txt",
                             "tests/data/RadiflowIsid_RawLogs.txt"})
        for (std::string& line : test::sample_lines(test::source_path(file))) lines.push_back(std::move(line));
    // Lines that take the slow paths too: invalid UTF-8, escapes, bad numbers and times, non-CEF.
    lines.push_back("CEF:0|V\\|x|P|1|2|N|3|msg=caf\xC3 dpt=abc start=yesterday end=1710409890000 a\\=b");
    lines.push_back("<13>Mar 14 09:15:02 host sshd[22]: not cef");
    lines.push_back("CEF:0|short");
    ASSERT_GT(lines.size(), 100U);

    Parser parser(ParseConfig{.collector_host_name = "collector"});
    Row row;
    MessageMeta meta;
    meta.receive_time_ns = 1'710'409'920'123'456'789;
    meta.source.family = AF_INET;
    meta.source.addr[0] = 127;
    meta.source.addr[3] = 1;
    std::vector<char> out(1 << 20);
    std::size_t encoded = 0;
    const auto run = [&](std::size_t count) {
        for (std::size_t i = 0; i < count; ++i) {
            const ParseResult r = parser.parse(lines[i % lines.size()], meta, row);
            if (r.outcome == ParseOutcome::row) {
                encoded += static_cast<std::size_t>(write_row_json(row, out.data()) - out.data());
            }
        }
    };
    run(lines.size());  // warm-up: rate-limited log statics, thread_local time cache

    const std::uint64_t before = allocations.load();
    ASSERT_GT(before, 0U) << "the counting operator new is not in use";
    run(10'000);
    const std::uint64_t after = allocations.load();
    EXPECT_EQ(after - before, 0U) << "allocations while parsing 10,000 messages";
    EXPECT_GT(encoded, 0U);
    EXPECT_GT(parser.stats().rows.load(), 9'000U);
}

TEST(ParserAllocation, MakesTenThousandSyslogTableRowsWithoutAllocating) {
    const std::vector<std::string> lines = {
        "<38>Mar 14 09:15:02 web-01 sshd[2201]: Accepted publickey for root from 192.0.2.9",
        R"(<165>1 2024-03-14T10:22:03.412345+01:00 host evntslog 77 ID47 [x@1 iut="3"] An application event)",
        "<13>Mar 14 09:15:02 app[worker]: no host, non-numeric pid",
        "no header at all",
        "<134>Mar 14 09:15:02 dt CEF:0|V|P|1|2|N|3|src=192.0.2.1",
        "<13>1 - - - - - -",  // no MSG: a row with an empty SyslogMessage
    };
    Parser parser(ParseConfig{.non_cef = ParseConfig::NonCef::syslog_table, .collector_host_name = "collector"});
    Row row;
    MessageMeta meta;
    meta.receive_time_ns = 1'710'409'920'123'456'789;
    meta.source.family = AF_INET;
    meta.source.addr[0] = 127;
    meta.source.addr[3] = 1;
    std::vector<char> out(1 << 20);
    const auto run = [&](std::size_t count) {
        for (std::size_t i = 0; i < count; ++i) {
            if (parser.parse(lines[i % lines.size()], meta, row).outcome == ParseOutcome::row)
                (void)write_row_json(row, out.data());
        }
    };
    run(lines.size());  // warm-up
    const std::uint64_t before = allocations.load();
    run(10'000);
    EXPECT_EQ(allocations.load() - before, 0U) << "allocations while making 10,000 Syslog rows";
    EXPECT_GT(parser.stats().syslog_rows.load(), 8'000U);  // 5 of every 6 lines
    EXPECT_GT(parser.stats().empty_syslog_messages.load(), 1'500U);
}

}  // namespace
}  // namespace cefd
