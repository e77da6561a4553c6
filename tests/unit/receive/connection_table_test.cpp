// ConnectionTable on its own: admission, with a driver that reads nothing (the engines' reads
// are what receive_test.cpp covers). The sockets are socketpair ends.
#include "stages/receive/connection_table.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "engine/queue/byte_ring.h"

namespace cefd::receive {
namespace {

class NullDriver final : public ConnectionDriver {
public:
    void resume_reads(Connection&) override {}
    void pause_reads(Connection&) override {}
    bool cancel_reads(Connection&) override { return false; }
    void on_close(Connection&) override {}
};

class ConnectionTableTest : public ::testing::Test {
protected:
    ConnectionTableTest() {
        config.tcp_max_connections = 16;
        config.tcp_max_connections_per_source = 1;
        intake = std::make_unique<Intake>(config, 0, 1, ring, stats, reload);
        table = std::make_unique<ConnectionTable>(*intake);
    }
    ~ConnectionTableTest() override {
        table.reset();
        for (const int fd : peers) ::close(fd);
    }

    /// One end of a new socketpair (the other kept open, so the connection stays up).
    UniqueFd socket_end() {
        int ends[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends), 0);
        peers.push_back(ends[1]);
        return UniqueFd{ends[0]};
    }

    ReceiveConfig config;
    ByteRing ring{1 << 16};
    ReceiveStats stats;
    std::atomic<bool> reload{false};
    std::unique_ptr<Intake> intake;
    std::unique_ptr<ConnectionTable> table;
    NullDriver driver;
    std::vector<int> peers;
};

TEST_F(ConnectionTableTest, TheCapPerSourceHoldsForAKnownAddress) {
    SourceAddress source;
    source.family = AF_INET;
    source.addr[0] = 192;
    source.addr[3] = 7;
    EXPECT_NE(table->accept(socket_end(), source, Transport::tcp, driver), nullptr);
    EXPECT_EQ(table->accept(socket_end(), source, Transport::tcp, driver), nullptr);
    EXPECT_EQ(read(stats.tcp_refused_per_source), 1U);
}

// The io_uring engine learns a peer's address with getpeername after the accept; a peer that
// reset in between has none. All such connections shared one "unknown" source, so with the
// default cap the 257th was refused whoever its sender was. An unknown address is no one's.
TEST_F(ConnectionTableTest, ConnectionsWithNoKnownAddressAreNotOneSource) {
    const SourceAddress unknown;
    EXPECT_NE(table->accept(socket_end(), unknown, Transport::tcp, driver), nullptr);
    EXPECT_NE(table->accept(socket_end(), unknown, Transport::tcp, driver), nullptr);
    EXPECT_EQ(read(stats.tcp_refused_per_source), 0U);
    EXPECT_EQ(table->size(), 2U);
}

}  // namespace
}  // namespace cefd::receive
