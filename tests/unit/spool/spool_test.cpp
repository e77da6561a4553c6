// tests/unit/spool/spool_test.cpp: the spool against real files in a temporary directory:
// round trip, restart, damage of every kind, when_full policies, disk full, fsync modes.
#include "stages/spool/spool.h"

#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "tests/support/support.h"
#include "tests/unit/spool/spool_test_util.h"

namespace cefd::test {
namespace {

using namespace std::chrono_literals;
constexpr std::int64_t no_wait = 0;
constexpr std::int64_t short_wait_ns = 2'000'000'000;

std::unique_ptr<Spool> open_spool(const SpoolConfig& config) {
    auto spool = Spool::open(config);
    if (!spool) ADD_FAILURE() << "open failed: " << spool.error().describe();
    return spool ? std::move(spool).value() : nullptr;
}

std::vector<SpooledBatch> drain(Spool& spool) {
    std::vector<SpooledBatch> out;
    for (int i = 0; i < 100'000; ++i) {
        auto batch = spool.next(no_wait);
        if (!batch) break;
        out.push_back(std::move(*batch));
    }
    return out;
}

TEST(Spool, CreatesItsDirectoryPrivate) {
    TempDir tmp;
    const std::string dir = tmp.file("a/b/spool");
    auto spool = open_spool(small_config(dir));
    ASSERT_TRUE(spool);
    struct stat st{};
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700U);
}

TEST(Spool, RefusesADirectoryAnotherSpoolHolds) {
    TempDir tmp;
    auto first = open_spool(small_config(tmp.path()));
    auto second = Spool::open(small_config(tmp.path()));
    EXPECT_FALSE(second.ok());
}

TEST(Spool, RejectsBadConfig) {
    TempDir tmp;
    SpoolConfig config = small_config(tmp.path());
    config.max_bytes = config.segment_bytes;  // less than two segments
    auto spool = Spool::open(config);
    ASSERT_FALSE(spool.ok());
    EXPECT_EQ(spool.error().code, Errc::config);
}

TEST(Spool, RoundTripsBatchesInOrderAndForgetsAckedOnes) {
    TempDir tmp;
    auto spool = open_spool(small_config(tmp.path()));
    for (std::uint64_t i = 1; i <= 50; ++i) ASSERT_TRUE(spool->accept(make_batch(i, 100 + i * 10)));
    EXPECT_EQ(spool->pending(), 50U);
    EXPECT_GT(files_with_extension(tmp.path(), ".seg").size(), 1U) << "segment_bytes 4096 rotates";

    auto batches = drain(*spool);
    ASSERT_EQ(batches.size(), 50U);
    for (std::uint64_t i = 0; i < 50; ++i) {
        EXPECT_TRUE(same_batch(batches[i].batch, make_batch(i + 1, 100 + (i + 1) * 10))) << i;
        EXPECT_FALSE(batches[i].replayed);
        EXPECT_EQ(batches[i].attempts, 0U);
        if (i > 0) {
            EXPECT_GT(batches[i].id, batches[i - 1].id);
        }
    }
    for (const auto& b : batches) spool->ack(b.id);
    EXPECT_EQ(spool->pending(), 0U);
    EXPECT_EQ(read(spool->stats().batches_acked), 50U);
    EXPECT_EQ(files_with_extension(tmp.path(), ".seg").size(), 1U) << "only the active one is left";
    spool.reset();
    EXPECT_TRUE(files_with_extension(tmp.path(), ".seg").empty());
    EXPECT_TRUE(files_with_extension(tmp.path(), ".ack").empty());
}

TEST(Spool, NextWaitsForABatchFromAnotherThread) {
    TempDir tmp;
    auto spool = open_spool(small_config(tmp.path()));
    std::jthread producer([&] { spool->accept(make_batch(1)); });
    auto batch = spool->next(20'000'000'000);
    ASSERT_TRUE(batch.has_value());
    EXPECT_TRUE(same_batch(batch->batch, make_batch(1)));
}

TEST(Spool, ReleasedBatchComesBackWithAnotherAttempt) {
    TempDir tmp;
    auto spool = open_spool(small_config(tmp.path()));
    ASSERT_TRUE(spool->accept(make_batch(1)));
    ASSERT_TRUE(spool->accept(make_batch(2)));
    auto first = spool->next(no_wait);
    ASSERT_TRUE(first);
    const auto id = first->id;
    spool->release(std::move(*first));
    auto again = spool->next(no_wait);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->id, id) << "the oldest batch goes first";
    EXPECT_EQ(again->attempts, 1U);
    EXPECT_TRUE(same_batch(again->batch, make_batch(1)));
}

TEST(Spool, RestartReplaysOnlyUnackedBatches) {
    TempDir tmp;
    std::vector<std::uint64_t> ids;
    {
        auto spool = open_spool(small_config(tmp.path()));
        for (std::uint64_t i = 1; i <= 20; ++i) ASSERT_TRUE(spool->accept(make_batch(i, 300)));
        auto batches = drain(*spool);
        ASSERT_EQ(batches.size(), 20U);
        for (const auto& b : batches) ids.push_back(b.id);
        for (std::size_t i = 0; i < batches.size(); i += 2) spool->ack(batches[i].id);
        // The odd ones stay in flight: the process "stops" with the sender holding them.
    }
    auto spool = open_spool(small_config(tmp.path()));
    EXPECT_EQ(spool->pending(), 10U);
    auto replayed = drain(*spool);
    ASSERT_EQ(replayed.size(), 10U);
    std::uint64_t rows = 0;
    for (std::size_t i = 0; i < replayed.size(); ++i) {
        EXPECT_EQ(replayed[i].id, ids[2 * i + 1]);
        EXPECT_TRUE(replayed[i].replayed);
        EXPECT_TRUE(same_batch(replayed[i].batch, make_batch(2 * i + 2, 300)));
        rows += replayed[i].batch.rows;
    }
    EXPECT_EQ(read(spool->stats().batches_replayed), 10U);
    EXPECT_EQ(read(spool->stats().rows_replayed), rows);
    // New batches get new ids, above every recovered one, and come after the replayed ones.
    ASSERT_TRUE(spool->accept(make_batch(100)));
    auto fresh = spool->next(no_wait);
    ASSERT_TRUE(fresh);
    EXPECT_GT(fresh->id, ids.back());
    EXPECT_FALSE(fresh->replayed);
}

TEST(Spool, ProcessCrashLosesNoAcceptedBatch) {
    TempDir tmp;
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // The child writes, acknowledges some, and dies without running any destructor.
        auto spool = Spool::open(small_config(tmp.path()));
        if (!spool) ::_exit(3);
        for (std::uint64_t i = 1; i <= 30; ++i) {
            if (!(*spool)->accept(make_batch(i, 500))) ::_exit(4);
        }
        for (int i = 0; i < 10; ++i) {
            auto batch = (*spool)->next(0);
            if (!batch) ::_exit(5);
            (*spool)->ack(batch->id);
        }
        ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    auto spool = open_spool(small_config(tmp.path()));
    auto batches = drain(*spool);
    ASSERT_EQ(batches.size(), 20U);
    for (std::size_t i = 0; i < batches.size(); ++i)
        EXPECT_TRUE(same_batch(batches[i].batch, make_batch(i + 11, 500)));
    EXPECT_EQ(read(spool->stats().corrupt_records), 0U);
}

// --- Damage ------------------------------------------------------------------------------

/// Writes `count` batches of `body_bytes` and closes the spool without acknowledging any.
void write_unacked(const std::string& dir, std::uint64_t count, std::size_t body_bytes = 500) {
    SpoolConfig config = small_config(dir);
    config.segment_bytes = 1 << 20;  // one segment
    auto spool = open_spool(config);
    for (std::uint64_t i = 1; i <= count; ++i) ASSERT_TRUE(spool->accept(make_batch(i, body_bytes)));
}

std::vector<std::uint64_t> seeds_delivered(Spool& spool, std::size_t body_bytes = 500) {
    std::vector<std::uint64_t> seeds;
    for (auto& b : drain(spool)) {
        std::uint64_t seed = 0;
        for (std::uint64_t s = 1; s <= 1000 && seed == 0; ++s)
            if (same_batch(b.batch, make_batch(s, body_bytes))) seed = s;
        seeds.push_back(seed);
        spool.ack(b.id);
    }
    return seeds;
}

TEST(SpoolDamage, TornHeaderAtTheTailIsSkippedAndCounted) {
    TempDir tmp;
    write_unacked(tmp.path(), 3);
    const auto last = find_record(tmp.path(), 3);
    ASSERT_TRUE(last);
    std::filesystem::resize_file(last->path, last->offset + 20);  // a crash inside the header
    auto spool = open_spool(small_config(tmp.path()));
    EXPECT_EQ(seeds_delivered(*spool), (std::vector<std::uint64_t>{1, 2}));
    EXPECT_EQ(read(spool->stats().corrupt_records), 1U);
    EXPECT_EQ(files_with_extension(tmp.file("corrupt"), ".seg").size(), 1U);
}

TEST(SpoolDamage, TornBodyAtTheTailIsSkippedAndCounted) {
    TempDir tmp;
    write_unacked(tmp.path(), 3);
    const auto last = find_record(tmp.path(), 3);
    ASSERT_TRUE(last);
    std::filesystem::resize_file(last->path, last->offset + spool::header_bytes + 100);
    auto spool = open_spool(small_config(tmp.path()));
    EXPECT_EQ(seeds_delivered(*spool), (std::vector<std::uint64_t>{1, 2}));
    EXPECT_EQ(read(spool->stats().corrupt_records), 1U);
}

TEST(SpoolDamage, BadBodyChecksumIsSkippedWhenReadAndNotCountedTwice) {
    TempDir tmp;
    write_unacked(tmp.path(), 3);
    const auto middle = find_record(tmp.path(), 2);
    ASSERT_TRUE(middle);
    flip_byte(middle->path, middle->offset + spool::header_bytes + 10);
    {
        auto spool = open_spool(small_config(tmp.path()));
        auto batches = drain(*spool);
        ASSERT_EQ(batches.size(), 2U);
        EXPECT_TRUE(same_batch(batches[0].batch, make_batch(1, 500)));
        EXPECT_TRUE(same_batch(batches[1].batch, make_batch(3, 500)));
        EXPECT_EQ(read(spool->stats().corrupt_records), 1U);
        EXPECT_EQ(files_with_extension(tmp.file("corrupt"), ".seg").size(), 1U) << "copied aside";
        // Not acknowledged by the sender: they come back after a restart; the damaged one not.
    }
    auto spool = open_spool(small_config(tmp.path()));
    EXPECT_EQ(seeds_delivered(*spool), (std::vector<std::uint64_t>{1, 3}));
    EXPECT_EQ(read(spool->stats().corrupt_records), 0U);
}

TEST(SpoolDamage, BadHeaderInTheMiddleSkipsOnlyThatRecord) {
    TempDir tmp;
    write_unacked(tmp.path(), 5);
    const auto third = find_record(tmp.path(), 3);
    ASSERT_TRUE(third);
    flip_byte(third->path, third->offset + 17);  // inside the id
    {
        auto spool = open_spool(small_config(tmp.path()));
        EXPECT_EQ(read(spool->stats().corrupt_records), 1U);
        EXPECT_EQ(files_with_extension(tmp.file("corrupt"), ".seg").size(), 1U) << "moved aside";
        auto batches = drain(*spool);
        ASSERT_EQ(batches.size(), 4U);
        // Left unacknowledged: the copies in the new segment must survive another restart.
    }
    auto spool = open_spool(small_config(tmp.path()));
    EXPECT_EQ(seeds_delivered(*spool), (std::vector<std::uint64_t>{1, 2, 4, 5}));
    EXPECT_EQ(read(spool->stats().corrupt_records), 0U) << "counted once, not on every start";
}

TEST(SpoolDamage, CrashWhileSettingADamagedSegmentAsideDeliversEachBatchOnce) {
    TempDir tmp;
    write_unacked(tmp.path(), 4);
    const auto second = find_record(tmp.path(), 2);
    ASSERT_TRUE(second);
    flip_byte(second->path, second->offset + 5);
    const std::string damaged = second->path;
    TempDir elsewhere;  // not in the spool directory, where open() would set it aside
    const std::string saved = elsewhere.file("saved.seg.bak");
    std::filesystem::copy_file(damaged, saved);
    { auto spool = open_spool(small_config(tmp.path())); }  // copies 1, 3, 4 forward
    // As if the process died before the rename: the damaged original is back in place.
    std::filesystem::copy_file(saved, damaged);
    std::filesystem::remove(saved);
    auto spool = open_spool(small_config(tmp.path()));
    EXPECT_EQ(seeds_delivered(*spool), (std::vector<std::uint64_t>{1, 3, 4}));
}

TEST(SpoolDamage, ZeroFilledTailIsSkippedAndCounted) {
    TempDir tmp;
    write_unacked(tmp.path(), 3);
    const auto segments = files_with_extension(tmp.path(), ".seg");
    ASSERT_EQ(segments.size(), 1U);
    std::filesystem::resize_file(segments[0], file_size(segments[0]) + 8192);  // reads as zeros
    auto spool = open_spool(small_config(tmp.path()));
    EXPECT_EQ(seeds_delivered(*spool), (std::vector<std::uint64_t>{1, 2, 3}));
    EXPECT_EQ(read(spool->stats().corrupt_records), 1U);
}

TEST(SpoolDamage, TruncatedToNothingSegmentIsHarmless) {
    TempDir tmp;
    write_unacked(tmp.path(), 3);
    const auto segments = files_with_extension(tmp.path(), ".seg");
    std::filesystem::resize_file(segments[0], 0);
    auto spool = open_spool(small_config(tmp.path()));
    EXPECT_EQ(spool->pending(), 0U);
    ASSERT_TRUE(spool->accept(make_batch(9)));
    EXPECT_EQ(drain(*spool).size(), 1U);
}

TEST(SpoolDamage, MissingAckLogReplaysTheWholeSegment) {
    TempDir tmp;
    {
        SpoolConfig config = small_config(tmp.path());
        config.segment_bytes = 1 << 20;
        auto spool = open_spool(config);
        for (std::uint64_t i = 1; i <= 3; ++i) ASSERT_TRUE(spool->accept(make_batch(i, 500)));
        auto first = spool->next(no_wait);
        spool->ack(first->id);
    }
    const auto acks = files_with_extension(tmp.path(), ".ack");
    ASSERT_EQ(acks.size(), 1U);
    std::filesystem::remove(acks[0]);
    auto spool = open_spool(small_config(tmp.path()));
    EXPECT_EQ(read(spool->stats().corrupt_acks), 1U);
    EXPECT_EQ(seeds_delivered(*spool), (std::vector<std::uint64_t>{1, 2, 3})) << "a duplicate, not a loss";
}

TEST(SpoolDamage, DamagedAckLogKeepsItsGoodEntries) {
    TempDir tmp;
    {
        SpoolConfig config = small_config(tmp.path());
        config.segment_bytes = 1 << 20;
        auto spool = open_spool(config);
        for (std::uint64_t i = 1; i <= 4; ++i) ASSERT_TRUE(spool->accept(make_batch(i, 500)));
        auto first = spool->next(no_wait);
        auto second = spool->next(no_wait);
        spool->ack(first->id);
        spool->ack(second->id);
    }
    const auto acks = files_with_extension(tmp.path(), ".ack");
    ASSERT_EQ(acks.size(), 1U);
    flip_byte(acks[0], 16 + 3);  // the second entry
    write_file(acks[0], read_file(acks[0]) + "garbage");  // and a torn tail
    {
        auto spool = open_spool(small_config(tmp.path()));
        EXPECT_EQ(read(spool->stats().corrupt_acks), 1U);
        EXPECT_EQ(files_with_extension(tmp.file("corrupt"), ".ack").size(), 1U);
        EXPECT_EQ(seeds_delivered(*spool), (std::vector<std::uint64_t>{2, 3, 4}));
    }
}

TEST(SpoolDamage, GarbageFilesInTheDirectoryDoNotStopDelivery) {
    TempDir tmp;
    write_unacked(tmp.path(), 2);
    write_file(tmp.file("notes.txt"), "an operator's file: left alone");
    std::string junk(10'000, '\0');
    for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>(i * 7 + 3);
    write_file(tmp.file("00000000000000000099.seg"), junk);
    write_file(tmp.file("00000000000000000099.ack"), "xyz");
    write_file(tmp.file("00000000000000000077.ack"), "an ack log without its segment");
    auto spool = open_spool(small_config(tmp.path()));
    EXPECT_EQ(seeds_delivered(*spool), (std::vector<std::uint64_t>{1, 2}));
    EXPECT_EQ(read(spool->stats().corrupt_records), 1U);
    // Not a spool file name: kept for the operator in corrupt/, never acted on.
    EXPECT_FALSE(std::filesystem::exists(tmp.file("notes.txt")));
    EXPECT_EQ(read(spool->stats().unknown_files), 1U);
    EXPECT_EQ(files_with_extension(tmp.file("corrupt"), ".txt").size(), 1U);
    EXPECT_FALSE(std::filesystem::exists(tmp.file("00000000000000000077.ack")));
    EXPECT_FALSE(std::filesystem::exists(tmp.file("00000000000000000099.seg")));
}

TEST(SpoolDamage, NamesBeyondSixtyFourBitsAreSetAsideNotMisread) {
    TempDir tmp;
    write_unacked(tmp.path(), 2);
    const auto segments = files_with_extension(tmp.path(), ".seg");
    ASSERT_EQ(segments.size(), 1U);
    // A copy of a real segment under names that do not fit in 64 bits (10^20 - 1 read modulo
    // 2^64 is 7766279631452241919), the largest 64-bit value (its successor would wrap to 0)
    // and 0 (which the spool never writes).
    const std::vector<std::string> bad_names = {"99999999999999999999.seg", "99999999999999999999.ack",
                                                "18446744073709551615.seg", "00000000000000000000.seg"};
    for (const std::string& name : bad_names) std::filesystem::copy_file(segments[0], tmp.file(name));
    MetricsRegistry metrics;
    auto spool = open_spool(small_config(tmp.path()));
    spool->register_metrics(metrics);
    EXPECT_EQ(seeds_delivered(*spool), (std::vector<std::uint64_t>{1, 2})) << "each batch once";
    EXPECT_EQ(read(spool->stats().unknown_files), bad_names.size());
    EXPECT_EQ(metrics.value("spool_unknown_files_total"), static_cast<double>(bad_names.size()));
    for (const std::string& name : bad_names) EXPECT_FALSE(std::filesystem::exists(tmp.file(name))) << name;
    EXPECT_EQ(files_with_extension(tmp.file("corrupt"), ".seg").size(), 3U);
    EXPECT_EQ(files_with_extension(tmp.file("corrupt"), ".ack").size(), 1U);
    // The new active segment follows the real one, not a misread number.
    for (const std::string& path : files_with_extension(tmp.path(), ".seg"))
        EXPECT_LT(std::filesystem::path(path).filename().string(), "00000000000000000100.seg") << path;
    EXPECT_FALSE(std::filesystem::exists(tmp.file("07766279631452241919.seg")));
}

TEST(SpoolDamage, CorruptDirectoryIsCapped) {
    TempDir tmp;
    for (int round = 0; round < 4; ++round) {
        write_unacked(tmp.path(), 1);
        const auto segments = files_with_extension(tmp.path(), ".seg");
        ASSERT_FALSE(segments.empty());
        std::filesystem::resize_file(segments.back(), file_size(segments.back()) - 1);
        SpoolConfig config = small_config(tmp.path());
        config.corrupt_files_max = 2;
        auto spool = open_spool(config);
        EXPECT_EQ(read(spool->stats().corrupt_records), 1U);
    }
    EXPECT_LE(count_files(tmp.file("corrupt")), 2U);
}

// Three damaged bodies in one segment: three lost batches, counted as drops with their rows, and
// one copy of the segment in corrupt/ (each damaged record used to add another whole copy).
TEST(SpoolDamage, DamagedBodiesAreCountedDropsAndTheirSegmentIsCopiedOnce) {
    TempDir tmp;
    SpoolConfig config = small_config(tmp.path());
    config.segment_bytes = 1 << 20;
    config.handoff_batches = 0;
    {
        auto spool = open_spool(config);
        for (std::uint64_t seed = 1; seed <= 10; ++seed) ASSERT_TRUE(spool->accept(make_batch(seed, 2000)));
    }
    const auto segments = files_with_extension(tmp.path(), ".seg");
    ASSERT_EQ(segments.size(), 1U);
    std::uint64_t offset = 0;
    std::uint64_t damaged_rows = 0;
    for (int index = 0; index < 10; ++index) {
        const int fd = ::open(segments[0].c_str(), O_RDONLY | O_CLOEXEC);
        spool::HeaderBytes bytes;
        ASSERT_EQ(::pread(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)),
                  static_cast<ssize_t>(bytes.size()));
        ::close(fd);
        const auto header = spool::decode_header(bytes);
        ASSERT_TRUE(header.has_value());
        if (index % 3 == 2) {
            flip_byte(segments[0], offset + spool::header_bytes + 100);
            damaged_rows += header->rows;
        }
        offset += spool::header_bytes + header->body_bytes;
    }
    auto spool = open_spool(config);
    int delivered = 0;
    while (auto batch = spool->next(0)) {
        ++delivered;
        spool->ack(batch->id);
    }
    EXPECT_EQ(delivered, 7);
    EXPECT_EQ(read(spool->stats().corrupt_records), 3U);
    EXPECT_EQ(read(spool->stats().dropped_damaged), 3U);
    EXPECT_EQ(read(spool->stats().dropped_batches), 3U);
    EXPECT_EQ(read(spool->stats().dropped_rows), damaged_rows);
    EXPECT_EQ(count_files(tmp.file("corrupt")), 1U);
}

// --- A segment that cannot be read at start ----------------------------------------------

/// Clears CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from this thread's effective set until
/// destroyed, so that root (the tests run as root) is held to file modes like cefd's own user.
/// Capabilities belong to a thread, so the rest of the process keeps them; nothing to do when
/// not root.
class FileModesEnforced {
public:
    FileModesEnforced() {
        header_.version = _LINUX_CAPABILITY_VERSION_3;
        if (::syscall(SYS_capget, &header_, saved_) != 0) return;
        __user_cap_data_struct lowered[2] = {saved_[0], saved_[1]};
        lowered[0].effective &= ~((1U << CAP_DAC_OVERRIDE) | (1U << CAP_DAC_READ_SEARCH));
        changed_ = ::syscall(SYS_capset, &header_, lowered) == 0;
    }
    ~FileModesEnforced() {
        if (changed_) ::syscall(SYS_capset, &header_, saved_);
    }
    FileModesEnforced(const FileModesEnforced&) = delete;
    FileModesEnforced& operator=(const FileModesEnforced&) = delete;

private:
    __user_cap_header_struct header_{};
    __user_cap_data_struct saved_[2]{};
    bool changed_ = false;
};

/// The seeds (make_batch) of the records in the segment file at `path`.
std::set<std::uint64_t> seeds_in_segment(const std::string& dir, const std::string& path, std::uint64_t seeds) {
    std::set<std::uint64_t> out;
    for (std::uint64_t id = 1; id <= seeds; ++id) {
        if (const auto where = find_record(dir, id); where && where->path == path) out.insert(id);
    }
    return out;
}

class SpoolUnreadable : public ::testing::TestWithParam<bool> {};

// Issue 13 item 11: new ids continued from the highest readable id, reusing the unreadable
// segment's; once it was readable again, a restart kept one of each pair of equal ids.
TEST_P(SpoolUnreadable, SegmentUnreadableAtStartIsCountedKeptAndDeliveredLater) {
    const bool id_floor_file = GetParam();
    TempDir tmp;
    SpoolConfig config = small_config(tmp.path());  // 4 KiB segments: 3 batches of 1000 bytes each
    {
        auto spool = open_spool(config);
        for (std::uint64_t i = 1; i <= 22; ++i) ASSERT_TRUE(spool->accept(make_batch(i, 1000)));
    }
    const auto segments = files_with_extension(tmp.path(), ".seg");
    ASSERT_GE(segments.size(), 3U);
    // The newest one holds the highest ids: the ones a new batch would get next.
    const std::string unreadable = segments.back();
    const std::set<std::uint64_t> hidden = seeds_in_segment(tmp.path(), unreadable, 22);
    ASSERT_FALSE(hidden.empty());
    ASSERT_EQ(*hidden.rbegin(), 22U);
    // As with a spool written before the IDS file existed.
    if (!id_floor_file) {
        ASSERT_TRUE(std::filesystem::remove(tmp.file("IDS")));
    }
    ASSERT_EQ(::chmod(unreadable.c_str(), 0), 0);

    std::multiset<std::uint64_t> delivered;
    std::string shutdown_log;
    {
        FileModesEnforced modes;
        const int probe = ::open(unreadable.c_str(), O_RDONLY | O_CLOEXEC);
        if (probe >= 0) {
            ::close(probe);
            GTEST_SKIP() << "cannot make a file unreadable here (no way to drop CAP_DAC_OVERRIDE)";
        }
        auto spool = open_spool(config);
        MetricsRegistry metrics;
        spool->register_metrics(metrics);
        EXPECT_EQ(spool->unreadable_segments(), 1U);
        EXPECT_EQ(read(spool->stats().unreadable_segments), 1U);
        EXPECT_EQ(metrics.value("spool_unreadable_segments"), 1.0);
        EXPECT_TRUE(std::filesystem::exists(unreadable)) << "an unreadable segment must be left alone";
        for (const std::uint64_t seed : seeds_delivered(*spool, 1000)) delivered.insert(seed);
        EXPECT_EQ(delivered.size(), 22U - hidden.size());
        // New batches, not delivered before the next start: their ids must be new ones.
        for (std::uint64_t i = 23; i <= 30; ++i) ASSERT_TRUE(spool->accept(make_batch(i, 1000)));
        testing::internal::CaptureStderr();
        spool.reset();
        shutdown_log = testing::internal::GetCapturedStderr();
    }
    EXPECT_NE(shutdown_log.find("could not be read"), std::string::npos) << "shutdown log:\n" << shutdown_log;

    // The permission is fixed: the next start sends the hidden batches and the new ones, each once.
    ASSERT_EQ(::chmod(unreadable.c_str(), 0600), 0);
    auto spool = open_spool(config);
    EXPECT_EQ(spool->unreadable_segments(), 0U);
    for (const std::uint64_t seed : seeds_delivered(*spool, 1000)) delivered.insert(seed);
    std::multiset<std::uint64_t> expected;
    for (std::uint64_t i = 1; i <= 30; ++i) expected.insert(i);
    EXPECT_EQ(delivered, expected);
}

INSTANTIATE_TEST_SUITE_P(IdFloor, SpoolUnreadable, ::testing::Bool(),
                         [](const auto& info) { return std::string(info.param ? "WithIdsFile" : "OlderSpoolWithoutIdsFile"); });

// --- when_full ---------------------------------------------------------------------------

SpoolConfig full_config(const std::string& dir, SpoolConfig::WhenFull when_full) {
    SpoolConfig config = small_config(dir);
    config.segment_bytes = 4096;
    config.max_bytes = 4 * 4096;
    config.when_full = when_full;
    config.block_timeout_ms = 20'000;
    return config;
}

TEST(SpoolWhenFull, DropNewestRefusesAndCountsRows) {
    TempDir tmp;
    auto spool = open_spool(full_config(tmp.path(), SpoolConfig::WhenFull::drop_newest));
    std::uint64_t accepted = 0;
    std::uint64_t refused_rows = 0;
    for (std::uint64_t i = 1; i <= 40; ++i) {
        if (spool->accept(make_batch(i, 1000))) ++accepted;
        else refused_rows += make_batch(i, 1000).rows;
    }
    EXPECT_GT(accepted, 0U);
    EXPECT_LT(accepted, 40U);
    EXPECT_EQ(read(spool->stats().dropped_newest), 40 - accepted);
    EXPECT_EQ(read(spool->stats().dropped_batches), 40 - accepted);
    EXPECT_EQ(read(spool->stats().dropped_rows), refused_rows);
    EXPECT_LE(spool->bytes(), 4U * 4096);
    const auto batches = drain(*spool);
    ASSERT_EQ(batches.size(), accepted);
    for (std::size_t i = 0; i < batches.size(); ++i)
        EXPECT_TRUE(same_batch(batches[i].batch, make_batch(i + 1, 1000))) << "the oldest are kept";
}

TEST(SpoolWhenFull, DropOldestKeepsTheNewest) {
    TempDir tmp;
    auto spool = open_spool(full_config(tmp.path(), SpoolConfig::WhenFull::drop_oldest));
    for (std::uint64_t i = 1; i <= 40; ++i) ASSERT_TRUE(spool->accept(make_batch(i, 1000)));
    EXPECT_LE(spool->bytes(), 4U * 4096);
    const auto dropped = read(spool->stats().dropped_oldest);
    EXPECT_GT(dropped, 0U);
    EXPECT_EQ(dropped + spool->pending(), 40U);
    const auto batches = drain(*spool);
    ASSERT_FALSE(batches.empty());
    EXPECT_TRUE(same_batch(batches.back().batch, make_batch(40, 1000)));
    EXPECT_TRUE(same_batch(batches.front().batch, make_batch(dropped + 1, 1000)));
}

// drop_oldest with only the active segment left and no file descriptor for a new one: the
// drops are write errors (the policy could not make room), not "too_large", which means one
// batch bigger than max_bytes. They were counted as too_large. Found in review.
TEST(SpoolWhenFull, DropOldestThatCannotStartASegmentCountsWriteErrors) {
    TempDir tmp;
    SpoolConfig config = full_config(tmp.path(), SpoolConfig::WhenFull::drop_oldest);
    config.segment_bytes = 4096;
    config.max_bytes = 8192;
    auto spool = open_spool(config);
    rlimit saved{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
    rlimit low = saved;
    low.rlim_cur = 256;  // so the loop below ends quickly whatever the hard limit
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    std::vector<int> fds;
    for (int fd; (fd = ::dup(0)) >= 0;) fds.push_back(fd);
    int accepted = 0;
    for (std::uint64_t i = 1; i <= 12; ++i) accepted += spool->accept(make_batch(i, 1000)) ? 1 : 0;
    for (const int fd : fds) ::close(fd);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
    EXPECT_GT(read(spool->stats().segment_start_errors), 0U);
    EXPECT_GT(read(spool->stats().dropped_batches), 0U);
    EXPECT_EQ(read(spool->stats().dropped_too_large), 0U) << accepted << " accepted";
    EXPECT_EQ(read(spool->stats().dropped_write_error), read(spool->stats().dropped_batches));
}

TEST(SpoolWhenFull, DropOldestForgetsBatchesTheSenderHolds) {
    TempDir tmp;
    auto spool = open_spool(full_config(tmp.path(), SpoolConfig::WhenFull::drop_oldest));
    ASSERT_TRUE(spool->accept(make_batch(1, 1000)));
    auto held = spool->next(no_wait);
    ASSERT_TRUE(held);
    for (std::uint64_t i = 2; i <= 40; ++i) ASSERT_TRUE(spool->accept(make_batch(i, 1000)));
    const auto dropped_before = read(spool->stats().dropped_batches);
    spool->release(std::move(*held));  // its segment is gone: now it is a counted drop
    EXPECT_EQ(read(spool->stats().dropped_batches), dropped_before + 1);
    EXPECT_EQ(read(spool->stats().dropped_batches) + spool->pending(), 40U);
}

TEST(SpoolWhenFull, BlockWaitsForTheSenderToFreeSpace) {
    TempDir tmp;
    auto spool = open_spool(full_config(tmp.path(), SpoolConfig::WhenFull::block));
    // Fill it: with drop_newest semantics the next one would be refused.
    std::uint64_t stored = 0;
    while (spool->bytes() + 1064 <= 4U * 4096 && stored < 100) {
        ASSERT_TRUE(spool->accept(make_batch(++stored, 1000)));
    }
    std::atomic<bool> done{false};
    std::atomic<bool> result{false};
    std::jthread lane([&] {
        result = spool->accept(make_batch(999, 1000));
        done = true;
    });
    // The sender delivers everything; acknowledgements free whole segments.
    ASSERT_TRUE(wait_until(20s, [&] {
        while (auto b = spool->next(no_wait)) spool->ack(b->id);
        return done.load();
    })) << "accept still blocked; bytes " << spool->bytes();
    EXPECT_TRUE(result.load());
    EXPECT_EQ(read(spool->stats().dropped_batches), 0U);
}

TEST(SpoolWhenFull, BlockGivesUpAfterTheTimeoutAndCounts) {
    TempDir tmp;
    SpoolConfig config = full_config(tmp.path(), SpoolConfig::WhenFull::block);
    config.block_timeout_ms = 50;
    auto spool = open_spool(config);
    std::uint64_t refused = 0;
    for (std::uint64_t i = 1; i <= 20; ++i) refused += spool->accept(make_batch(i, 1000)) ? 0 : 1;
    EXPECT_GT(refused, 0U);
    EXPECT_EQ(read(spool->stats().dropped_block_timeout), refused);
}

TEST(SpoolWhenFull, OneBatchLargerThanTheSpoolIsRefused) {
    TempDir tmp;
    auto spool = open_spool(full_config(tmp.path(), SpoolConfig::WhenFull::drop_oldest));
    EXPECT_FALSE(spool->accept(make_batch(1, 5 * 4096)));
    EXPECT_EQ(read(spool->stats().dropped_too_large), 1U);
}

// --- Disk full on a real, small file system ------------------------------------------------

class SmallFilesystem {
public:
    explicit SmallFilesystem(const std::string& dir, const std::string& size = "1m") : dir_(dir) {
        std::filesystem::create_directories(dir_);
        const std::string options = "size=" + size;
        mounted_ = ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, options.c_str()) == 0;
        if (!mounted_) error_ = errno;
    }
    ~SmallFilesystem() {
        if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    }
    SmallFilesystem(const SmallFilesystem&) = delete;
    SmallFilesystem& operator=(const SmallFilesystem&) = delete;
    [[nodiscard]] bool mounted() const { return mounted_; }
    [[nodiscard]] int error() const { return error_; }

private:
    std::string dir_;
    bool mounted_ = false;
    int error_ = 0;
};

SpoolConfig disk_full_config(const std::string& dir, SpoolConfig::WhenFull when_full) {
    SpoolConfig config = small_config(dir + "/spool");
    config.segment_bytes = 256 * 1024;
    config.max_bytes = 64ULL << 20;  // far above the 1 MiB file system: the disk fills first
    config.when_full = when_full;
    config.block_timeout_ms = 100;
    return config;
}

TEST(SpoolDiskFull, RaisesTheAlarmDropsNewestAndRecovers) {
    TempDir tmp;
    SmallFilesystem fs(tmp.file("mnt"));
    if (!fs.mounted()) GTEST_SKIP() << "cannot mount a 1 MiB tmpfs (errno " << fs.error() << ": needs root)";
    auto spool = open_spool(disk_full_config(tmp.file("mnt"), SpoolConfig::WhenFull::drop_newest));
    MetricsRegistry metrics;
    spool->register_metrics(metrics);
    std::uint64_t accepted = 0;
    for (std::uint64_t i = 1; i <= 30; ++i) accepted += spool->accept(make_batch(i, 100 * 1024)) ? 1 : 0;
    EXPECT_GT(accepted, 0U);
    EXPECT_LT(accepted, 30U);
    EXPECT_GT(read(spool->stats().write_errors), 0U);
    EXPECT_EQ(read(spool->stats().dropped_write_error), 30 - accepted);
    EXPECT_TRUE(spool->write_failing());
    EXPECT_EQ(metrics.value("spool_write_failing"), 1.0);

    // Everything stored is still intact; delivering it frees the disk.
    const auto batches = drain(*spool);
    ASSERT_EQ(batches.size(), accepted);
    for (std::size_t i = 0; i < batches.size(); ++i)
        EXPECT_TRUE(same_batch(batches[i].batch, make_batch(i + 1, 100 * 1024)));
    for (const auto& b : batches) spool->ack(b.id);
    ASSERT_TRUE(spool->accept(make_batch(100, 100 * 1024))) << "writes succeed again";
    EXPECT_FALSE(spool->write_failing());
    EXPECT_EQ(metrics.value("spool_write_failing"), 0.0);
}

TEST(SpoolDiskFull, DropOldestMakesRoomByDeletingOldSegments) {
    TempDir tmp;
    SmallFilesystem fs(tmp.file("mnt"));
    if (!fs.mounted()) GTEST_SKIP() << "cannot mount a 1 MiB tmpfs (errno " << fs.error() << ": needs root)";
    auto spool = open_spool(disk_full_config(tmp.file("mnt"), SpoolConfig::WhenFull::drop_oldest));
    for (std::uint64_t i = 1; i <= 30; ++i) EXPECT_TRUE(spool->accept(make_batch(i, 100 * 1024))) << i;
    EXPECT_GT(read(spool->stats().write_errors), 0U);
    EXPECT_GT(read(spool->stats().dropped_oldest), 0U);
    EXPECT_FALSE(spool->write_failing()) << "the last write succeeded";
    const auto batches = drain(*spool);
    ASSERT_FALSE(batches.empty());
    EXPECT_TRUE(same_batch(batches.back().batch, make_batch(30, 100 * 1024)));
    EXPECT_EQ(read(spool->stats().dropped_batches) + batches.size(), 30U);
}

TEST(SpoolDiskFull, BlockRetriesUntilTheSenderFreesTheDisk) {
    TempDir tmp;
    SmallFilesystem fs(tmp.file("mnt"));
    if (!fs.mounted()) GTEST_SKIP() << "cannot mount a 1 MiB tmpfs (errno " << fs.error() << ": needs root)";
    SpoolConfig config = disk_full_config(tmp.file("mnt"), SpoolConfig::WhenFull::block);
    config.block_timeout_ms = 20'000;
    auto spool = open_spool(config);
    std::atomic<std::uint64_t> accepted{0};
    std::atomic<bool> done{false};
    std::jthread lane([&] {
        for (std::uint64_t i = 1; i <= 30; ++i) accepted += spool->accept(make_batch(i, 100 * 1024)) ? 1 : 0;
        done = true;
    });
    // Hold back until the disk has filled up, then deliver everything.
    ASSERT_TRUE(wait_until(20s, [&] { return done.load() || read(spool->stats().write_errors) > 0; }));
    std::uint64_t delivered = 0;
    ASSERT_TRUE(wait_until(20s, [&] {
        while (auto b = spool->next(no_wait)) {
            EXPECT_TRUE(same_batch(b->batch, make_batch(delivered + 1, 100 * 1024)));
            ++delivered;
            spool->ack(b->id);
        }
        return done.load() && spool->pending() == 0;
    })) << "accepted " << accepted.load() << ", delivered " << delivered;
    EXPECT_EQ(accepted.load(), 30U);
    EXPECT_EQ(delivered, 30U);
    EXPECT_GT(read(spool->stats().write_errors), 0U);
    EXPECT_EQ(read(spool->stats().dropped_batches), 0U);
    // The gauge clears on the next successful write: an ack written while the disk was still
    // full may have set it after the last batch went in.
    EXPECT_TRUE(spool->accept(make_batch(31, 100 * 1024)));
    EXPECT_FALSE(spool->write_failing());
}

// With the default segment_bytes (64 MiB) a 2 MiB disk fills up inside one segment, which is
// then still the active one when the sender has acknowledged every batch in it.
class SpoolDiskFullDefaultSegments : public ::testing::TestWithParam<SpoolConfig::WhenFull> {};

TEST_P(SpoolDiskFullDefaultSegments, FreesTheAcknowledgedActiveSegmentOnceDeliveryCatchesUp) {
    TempDir tmp;
    SmallFilesystem fs(tmp.file("mnt"), "2m");
    if (!fs.mounted()) GTEST_SKIP() << "cannot mount a 2 MiB tmpfs (errno " << fs.error() << ": needs root)";
    SpoolConfig config = small_config(tmp.file("mnt") + "/spool");
    config.segment_bytes = SpoolConfig{}.segment_bytes;
    config.max_bytes = SpoolConfig{}.max_bytes;
    config.when_full = GetParam();
    config.block_timeout_ms = 100;
    ASSERT_EQ(config.segment_bytes, 64U << 20);
    auto spool = open_spool(config);
    MetricsRegistry metrics;
    spool->register_metrics(metrics);
    constexpr std::size_t body_bytes = 100 * 1024;
    std::uint64_t seed = 0;
    while (read(spool->stats().write_errors) == 0 && seed < 100) spool->accept(make_batch(++seed, body_bytes));
    ASSERT_GT(read(spool->stats().write_errors), 0U) << "the 2 MiB disk never filled";
    // drop_oldest made room at once (by dropping), so its last write succeeded.
    if (GetParam() != SpoolConfig::WhenFull::drop_oldest) {
        ASSERT_TRUE(spool->write_failing());
    }

    // The outage ends: everything stored is delivered and acknowledged, and the space is freed.
    for (auto& b : drain(*spool)) spool->ack(b.id);
    ASSERT_EQ(spool->pending(), 0U);
    if (GetParam() != SpoolConfig::WhenFull::drop_oldest) {
        EXPECT_LT(metrics.value("spool_bytes"), 1024.0 * 1024) << "the acknowledged segment was not freed";
    }
    const std::uint64_t dropped = read(spool->stats().dropped_batches);

    // New batches are stored again, and the disk is freed as they are delivered.
    for (int i = 0; i < 40; ++i) {
        ASSERT_TRUE(spool->accept(make_batch(++seed, body_bytes)))
            << "batch " << i << " after the outage refused; spool_bytes " << metrics.value("spool_bytes")
            << ", drops " << read(spool->stats().dropped_batches);
        auto b = spool->next(no_wait);
        ASSERT_TRUE(b);
        EXPECT_TRUE(same_batch(b->batch, make_batch(seed, body_bytes)));
        spool->ack(b->id);
    }
    EXPECT_FALSE(spool->write_failing());
    EXPECT_EQ(metrics.value("spool_write_failing"), 0.0);
    EXPECT_EQ(read(spool->stats().dropped_batches), dropped) << "no drops after the outage";
}

INSTANTIATE_TEST_SUITE_P(WhenFull, SpoolDiskFullDefaultSegments,
                         ::testing::Values(SpoolConfig::WhenFull::drop_oldest, SpoolConfig::WhenFull::drop_newest,
                                           SpoolConfig::WhenFull::block),
                         [](const auto& info) {
                             switch (info.param) {
                                 case SpoolConfig::WhenFull::drop_oldest: return std::string("drop_oldest");
                                 case SpoolConfig::WhenFull::drop_newest: return std::string("drop_newest");
                                 case SpoolConfig::WhenFull::block: return std::string("block");
                             }
                             return std::string("unknown");
                         });

/// Holds every free descriptor (under a lowered soft RLIMIT_NOFILE) until destroyed, so the
/// next open() in this process fails with EMFILE.
class DescriptorsExhausted {
public:
    DescriptorsExhausted() {
        ::getrlimit(RLIMIT_NOFILE, &saved_);
        rlimit lowered = saved_;
        lowered.rlim_cur = std::min<rlim_t>(saved_.rlim_cur, 512);  // bounds the loop below
        ::setrlimit(RLIMIT_NOFILE, &lowered);
        for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fds_.push_back(fd);
        error_ = errno;
    }
    ~DescriptorsExhausted() {
        for (const int fd : fds_) ::close(fd);
        ::setrlimit(RLIMIT_NOFILE, &saved_);
    }
    DescriptorsExhausted(const DescriptorsExhausted&) = delete;
    DescriptorsExhausted& operator=(const DescriptorsExhausted&) = delete;
    [[nodiscard]] int error() const { return error_; }

private:
    rlimit saved_{};
    std::vector<int> fds_;
    int error_ = 0;
};

TEST(SpoolOpenFileLimit, EmfileIsNotAFullSpoolAndDeletesNothing) {
    TempDir tmp;
    SpoolConfig config = small_config(tmp.path());  // 4 KiB segments: a new one every 3 batches
    config.when_full = SpoolConfig::WhenFull::drop_oldest;
    auto spool = open_spool(config);
    MetricsRegistry metrics;
    spool->register_metrics(metrics);
    for (std::uint64_t i = 1; i <= 10; ++i) ASSERT_TRUE(spool->accept(make_batch(i, 1000)));
    ASSERT_GT(files_with_extension(tmp.path(), ".seg").size(), 2U) << "unsent batches in older segments";
    {
        DescriptorsExhausted exhausted;
        ASSERT_EQ(exhausted.error(), EMFILE);
        // Each of these needs a new segment, which cannot be created now.
        for (std::uint64_t i = 11; i <= 20; ++i) EXPECT_TRUE(spool->accept(make_batch(i, 1000))) << i;
    }
    EXPECT_EQ(read(spool->stats().dropped_batches), 0U) << "unsent batches were deleted for EMFILE";
    EXPECT_EQ(read(spool->stats().dropped_oldest), 0U);
    EXPECT_GT(read(spool->stats().segment_start_errors), 0U);
    EXPECT_GT(metrics.value("spool_segment_start_errors_total"), 0.0);
    // With descriptors free again the next batch starts a new segment, and all 21 arrive in order.
    const std::size_t segments_before = files_with_extension(tmp.path(), ".seg").size();
    ASSERT_TRUE(spool->accept(make_batch(21, 1000)));
    EXPECT_EQ(files_with_extension(tmp.path(), ".seg").size(), segments_before + 1);
    const auto batches = drain(*spool);
    ASSERT_EQ(batches.size(), 21U);
    for (std::size_t i = 0; i < batches.size(); ++i) EXPECT_TRUE(same_batch(batches[i].batch, make_batch(i + 1, 1000)));
}

// --- fsync modes -------------------------------------------------------------------------

TEST(SpoolFsync, BatchModeSyncsEveryWriteAndAck) {
    TempDir tmp;
    SpoolConfig config = small_config(tmp.path());
    config.fsync = SpoolConfig::Fsync::batch;
    auto spool = open_spool(config);
    for (std::uint64_t i = 1; i <= 5; ++i) ASSERT_TRUE(spool->accept(make_batch(i)));
    EXPECT_GE(read(spool->stats().fsyncs), 5U);
    for (auto& b : drain(*spool)) spool->ack(b.id);
    EXPECT_GE(read(spool->stats().fsyncs), 10U);
}

TEST(SpoolFsync, IntervalModeSyncsInTheBackground) {
    TempDir tmp;
    SpoolConfig config = small_config(tmp.path());
    config.fsync = SpoolConfig::Fsync::interval;
    config.fsync_interval_ms = 10;
    auto spool = open_spool(config);
    ASSERT_TRUE(spool->accept(make_batch(1)));
    EXPECT_TRUE(wait_until(10s, [&] { return read(spool->stats().fsyncs) >= 1; }));
    auto b = spool->next(no_wait);
    spool->ack(b->id);
    EXPECT_TRUE(wait_until(10s, [&] { return read(spool->stats().fsyncs) >= 2; }));
}

TEST(SpoolFsync, NeverModeDoesNotSync) {
    TempDir tmp;
    auto spool = open_spool(small_config(tmp.path()));
    for (std::uint64_t i = 1; i <= 5; ++i) ASSERT_TRUE(spool->accept(make_batch(i)));
    for (auto& b : drain(*spool)) spool->ack(b.id);
    EXPECT_EQ(read(spool->stats().fsyncs), 0U);
}

// --- overflow mode -----------------------------------------------------------------------

SpoolConfig overflow_config(const std::string& dir) {
    SpoolConfig config = small_config(dir);
    config.mode = SpoolConfig::Mode::overflow;
    config.overflow_memory_batches = 4;
    return config;
}

TEST(SpoolOverflow, HandsBatchesOverInMemoryWhileTheSenderKeepsUp) {
    TempDir tmp;
    auto spool = open_spool(overflow_config(tmp.path()));
    for (std::uint64_t i = 1; i <= 20; ++i) {
        ASSERT_TRUE(spool->accept(make_batch(i)));
        auto b = spool->next(no_wait);
        ASSERT_TRUE(b);
        EXPECT_TRUE(same_batch(b->batch, make_batch(i)));
        spool->ack(b->id);
    }
    EXPECT_EQ(read(spool->stats().batches_written), 0U);
    EXPECT_EQ(spool->pending(), 0U);
}

TEST(SpoolOverflow, SpillsWhenTheSenderFallsBehindOrFails) {
    TempDir tmp;
    {
        auto spool = open_spool(overflow_config(tmp.path()));
        for (std::uint64_t i = 1; i <= 10; ++i) ASSERT_TRUE(spool->accept(make_batch(i)));
        EXPECT_EQ(read(spool->stats().batches_spilled), 6U) << "4 wait in memory";
        auto b = spool->next(no_wait);
        ASSERT_TRUE(b);
        EXPECT_TRUE(same_batch(b->batch, make_batch(1)));
        spool->release(std::move(*b));  // Azure failed: keep it on disk now
        EXPECT_EQ(read(spool->stats().batches_spilled), 7U);
        auto again = spool->next(no_wait);
        ASSERT_TRUE(again);
        EXPECT_TRUE(same_batch(again->batch, make_batch(1)));
        EXPECT_EQ(again->attempts, 1U);
        EXPECT_EQ(spool->pending(), 10U);
        // Shut down with batches in memory and one held by the sender: all go to disk.
    }
    auto spool = open_spool(overflow_config(tmp.path()));
    EXPECT_EQ(spool->pending(), 10U);
    std::set<std::uint64_t> seen;
    for (auto& b : drain(*spool)) {
        for (std::uint64_t s = 1; s <= 10; ++s)
            if (same_batch(b.batch, make_batch(s))) seen.insert(s);
    }
    EXPECT_EQ(seen.size(), 10U);
}

// --- threads and metrics -----------------------------------------------------------------

TEST(SpoolHandoff, ASenderThatKeepsUpGetsTheBodyAsWrittenALaggingOneReadsItBack) {
    TempDir tmp;
    SpoolConfig config = small_config(tmp.path());
    config.handoff_batches = 2;
    auto spool = open_spool(config);
    for (std::uint64_t seed = 1; seed <= 4; ++seed) ASSERT_TRUE(spool->accept(make_batch(seed, 500)));
    EXPECT_EQ(read(spool->stats().batches_written), 4U) << "always mode: every batch is on disk";
    // Damage every copy on disk: 1 and 2 came while at most two waited, so the sender gets
    // them from memory, intact; 3 and 4 came later and are read back, so they are caught.
    for (std::uint64_t id = 1; id <= 4; ++id) {
        const auto record = find_record(tmp.path(), id);
        ASSERT_TRUE(record) << id;
        flip_byte(record->path, record->offset + spool::header_bytes + 10);
    }
    auto first = spool->next(no_wait);
    auto second = spool->next(no_wait);
    ASSERT_TRUE(first && second);
    EXPECT_TRUE(same_batch(first->batch, make_batch(1, 500)));
    EXPECT_TRUE(same_batch(second->batch, make_batch(2, 500)));
    EXPECT_EQ(read(spool->stats().batches_from_memory), 2U);
    EXPECT_FALSE(spool->next(no_wait)) << "3 and 4 are damaged on disk";
    EXPECT_EQ(read(spool->stats().corrupt_records), 2U);
    // A batch the sender gives back is read from the disk next time: its copy there is damaged.
    spool->release(std::move(*second));
    EXPECT_FALSE(spool->next(no_wait));
    EXPECT_EQ(read(spool->stats().corrupt_records), 3U);
    spool->ack(first->id);
    EXPECT_EQ(spool->pending(), 0U);
}

TEST(SpoolHandoff, ZeroReadsEveryBodyBack) {
    TempDir tmp;
    SpoolConfig config = small_config(tmp.path());
    config.handoff_batches = 0;
    auto spool = open_spool(config);
    ASSERT_TRUE(spool->accept(make_batch(1, 500)));
    const auto record = find_record(tmp.path(), 1);
    ASSERT_TRUE(record);
    flip_byte(record->path, record->offset + spool::header_bytes + 10);
    EXPECT_FALSE(spool->next(no_wait));
    EXPECT_EQ(read(spool->stats().corrupt_records), 1U);
    EXPECT_EQ(read(spool->stats().batches_from_memory), 0U);
}

TEST(Spool, ManyLanesAcceptWhileTheSenderDrains) {
    TempDir tmp;
    auto spool = open_spool(small_config(tmp.path()));
    constexpr int lanes = 4;
    constexpr std::uint64_t per_lane = 200;
    std::vector<std::jthread> threads;
    for (int lane = 0; lane < lanes; ++lane) {
        threads.emplace_back([&, lane] {
            for (std::uint64_t i = 0; i < per_lane; ++i)
                spool->accept(make_batch(static_cast<std::uint64_t>(lane) * per_lane + i + 1, 300));
        });
    }
    std::set<std::uint64_t> ids;
    const bool all = wait_until(20s, [&] {
        while (auto b = spool->next(no_wait)) {
            ids.insert(b->id);
            spool->ack(b->id);
        }
        return ids.size() == lanes * per_lane;
    });
    EXPECT_TRUE(all) << "delivered " << ids.size();
    threads.clear();
    EXPECT_EQ(spool->pending(), 0U);
}

TEST(Spool, RegistersCountersAndGauges) {
    TempDir tmp;
    auto spool = open_spool(small_config(tmp.path()));
    MetricsRegistry metrics;
    spool->register_metrics(metrics);
    ASSERT_TRUE(spool->accept(make_batch(1, 1000)));
    EXPECT_EQ(metrics.value("spool_batches_written_total"), 1.0);
    EXPECT_EQ(metrics.value("spool_pending_batches"), 1.0);
    EXPECT_EQ(metrics.value("spool_bytes"), 1064.0);
    const std::string text = metrics.render();
    EXPECT_NE(text.find("cefd_spool_drops_total{reason=\"oldest\"} 0"), std::string::npos) << text;
    EXPECT_NE(text.find("cefd_spool_corrupt_records_total 0"), std::string::npos);
    auto b = spool->next(short_wait_ns);
    spool->ack(b->id);
    EXPECT_EQ(metrics.value("spool_pending_batches"), 0.0);
}

}  // namespace
}  // namespace cefd::test
