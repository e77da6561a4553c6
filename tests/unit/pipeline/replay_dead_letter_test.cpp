// cefd replay-dead-letter (engine/pipeline/replay_dead_letter.cpp): what it refuses to do, and
// what it must never do to batches already in the spool. The happy path runs end to end in
// tests/e2e (send_replay_dead_letter).
#include "engine/pipeline/replay_dead_letter.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "stages/send/body.h"
#include "stages/send/dead_letter.h"
#include "stages/spool/spool.h"
#include "tests/support/support.h"

namespace cefd {
namespace {

const std::string azure_minimal = R"(
[azure]
endpoint = "https://x.westeurope-1.ingest.monitor.azure.com"
dcr_id = "dcr-0123456789abcdef0123456789abcdef"
auth = "managed_identity"
)";

int replay(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return replay_dead_letter_main(static_cast<int>(args.size()), argv.data());
}

/// Writes <dir>/cefd.toml: dead letters in <dir>/dl, the spool in <dir>/spool (plus `spool_extra`
/// lines in [spool]). Returns its path.
std::string write_config(const test::TempDir& dir, const std::string& spool_extra = "") {
    const std::string config = dir.file("cefd.toml");
    test::write_file(config,
                     azure_minimal + "dead_letter_dir = \"" + dir.file("dl") + "\"\n[spool]\ndir = \"" +
                         dir.file("spool") + "\"\n" + spool_extra,
                     0600);
    return config;
}

std::string random_hex(std::mt19937& random, std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += digits[random() % 16];
    return out;
}

// A typo in DIR (or a dead_letter_dir this user cannot list) was "0 files, nothing to do", exit 0:
// the operator believed the dead letters went back into the spool. Found in review.
TEST(ReplayDeadLetter, ADirectoryThatDoesNotExistIsAnError) {
    test::TempDir dir;
    const std::string config = write_config(dir);
    EXPECT_NE(replay({"replay-dead-letter", "--config", config, dir.file("no-such-dir")}), 0);
}

// Replaying into a full spool evicted (when_full = "drop_oldest", the default) batches that were
// waiting there undelivered, to make room for batches Azure had already refused once, and still
// exited 0 with "N batches put back into the spool". Found in review.
TEST(ReplayDeadLetter, NeverDropsBatchesWaitingInAFullSpool) {
    test::TempDir dir;
    std::mt19937 random(7);
    SpoolConfig spool;
    spool.dir = dir.file("spool");
    spool.segment_bytes = 4'096;
    spool.max_bytes = 16'384;
    spool.fsync = SpoolConfig::Fsync::never;
    std::size_t before = 0;
    {
        auto opened = Spool::open(spool);
        ASSERT_TRUE(opened.ok()) << opened.error().describe();
        for (int i = 0; i < 8; ++i) {
            SealedBatch batch;
            const std::string body = random_hex(random, 1'700);
            batch.body.resize(body.size());
            std::memcpy(batch.body.data(), body.data(), body.size());
            batch.rows = 1;
            batch.json_bytes = 1'700;
            ASSERT_TRUE((*opened)->accept(std::move(batch)));
        }
        before = (*opened)->pending();
        ASSERT_EQ((*opened)->stats().dropped_batches.load(), 0U);
    }
    ASSERT_GE(before, 7U);
    for (int i = 0; i < 3; ++i) {
        const std::string json = "[{\"DeviceVendor\":\"x\",\"Message\":\"" + random_hex(random, 3'000) + "\"}]";
        SealedBatch batch;
        batch.body = gzip_body(json);
        batch.rows = 1;
        batch.json_bytes = static_cast<std::uint32_t>(json.size());
        ASSERT_TRUE(write_dead_letter(dir.file("dl"), batch,
                                      DeadLetter{.status = 400,
                                                 .request_id = "r" + std::to_string(i),
                                                 .endpoint = "https://x",
                                                 .dcr_id = "dcr-1",
                                                 .stream = "Custom-CommonSecurityLog",
                                                 .response = "bad"})
                        .ok());
    }
    const std::string config = write_config(dir, "segment_bytes = 4096\nmax_bytes = 16384\n");
    const int rc = replay({"replay-dead-letter", "--config", config});

    EXPECT_EQ(rc, 1) << "the spool filled up: the replay stops early, and says so";
    auto reopened = Spool::open(spool);
    ASSERT_TRUE(reopened.ok()) << reopened.error().describe();
    const std::size_t after = (*reopened)->pending();
    // What replay moved to replayed/ went into the spool; everything that was waiting there
    // must still be there too (replay may stop early when the spool is full, exit 1).
    std::size_t replayed = 0;
    for (const std::string& base : list_dead_letters(dir.file("dl") + "/replayed")) replayed += base.empty() ? 0 : 1;
    EXPECT_EQ(after, before + replayed) << "exit " << rc << ": " << replayed
                                        << " dead letters replayed, but the spool went from " << before << " to "
                                        << after << " batches: " << (before + replayed - after)
                                        << " undelivered spooled batch(es) were evicted to make room";
}

// The configured directory appears with the first dead letter: before that, nothing to do.
TEST(ReplayDeadLetter, AConfiguredDirectoryNotCreatedYetMeansNothingToDo) {
    test::TempDir dir;
    const std::string config = write_config(dir);
    EXPECT_EQ(replay({"replay-dead-letter", "--config", config}), 0);
}

// A file where the directory should be is an error, whatever errno said before.
TEST(ReplayDeadLetter, AFileInsteadOfADirectoryIsAnError) {
    test::TempDir dir;
    const std::string config = write_config(dir);
    test::write_file(dir.file("dl"), "not a directory", 0600);
    EXPECT_EQ(replay({"replay-dead-letter", "--config", config}), 2);
}

}  // namespace
}  // namespace cefd
