// cefd-loadgen --proto tls against the real cefd's TLS listener: every event of both framings
// is delivered once, and --verify reports latency for each.
#include <gtest/gtest.h>

#include <string>

#include "tests/e2e/harness.h"
#include "tests/unit/receive/test_pki.h"

namespace cefd::test {
namespace {

std::uint64_t json_number(const std::string& json, const std::string& key) {
    const std::size_t at = json.find("\"" + key + "\":");
    return at == std::string::npos ? ~0ull : std::stoull(json.substr(at + key.size() + 3));
}

TEST(SizingLoadgenTls, EveryEventOfBothFramingsArrivesOnceWithLatency) {
    TempDir dir;
    Identity ca = make_identity("cefd test CA", nullptr, 1);
    Identity server = make_identity("127.0.0.1", &ca, 2);
    write_cert(dir.file("ca.pem"), ca.cert.get());
    write_cert(dir.file("server.pem"), server.cert.get());
    write_key(dir.file("server.key"), server.key.get());
    AzureStandin azure(dir, {"--accept-log", dir.file("rows.jsonl.accept")});
    const int tls_port = free_port();
    Cefd cefd(dir, azure, {.receive_extra = tls_receive_lines(dir, tls_port)});
    for (const std::string framing : {"octet", "newline"}) {
        Process loadgen({binary_path("tools/loadgen/cefd-loadgen"), "--proto", "tls", "--framing", framing, "--target",
                         "127.0.0.1:" + std::to_string(tls_port), "--cacert", dir.file("ca.pem"), "--payload",
                         "templates", "--count", "2000", "--senders", "2", "--flows", "4", "--run-id", "tls-" + framing,
                         "--verify", azure.rows_path(), "--wait-s", "30"},
                        dir.path(), "loadgen-" + framing);
        ASSERT_EQ(loadgen.wait(std::chrono::seconds(90)), 0) << loadgen.out() << loadgen.err();
        EXPECT_EQ(json_number(loadgen.out(), "delivered"), 2000u) << loadgen.out();
        EXPECT_EQ(json_number(loadgen.out(), "duplicated"), 0u) << loadgen.out();
        EXPECT_EQ(json_number(loadgen.out(), "latency_samples"), 2000u) << loadgen.out();
        EXPECT_NE(loadgen.out().find("\"proto\":\"tls\""), std::string::npos);
    }
}

}  // namespace
}  // namespace cefd::test
