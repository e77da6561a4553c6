// write_dead_letter() is the last copy of a batch Azure refused: the spool acks the batch as soon
// as it returns ok, so ok must mean "on disk", and any failure must say so.
#include "stages/send/dead_letter.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "stages/send/body.h"
#include "tests/support/failing_sync.h"
#include "tests/support/support.h"

namespace cefd::test {
namespace {

SealedBatch json_batch() {
    const std::string json =
        R"([{"DeviceVendor":"Darktrace","Message":"a"},{"DeviceVendor":"Darktrace","Message":"b"}])";
    SealedBatch batch;
    batch.body = gzip_body(json);
    batch.rows = 2;
    batch.json_bytes = static_cast<std::uint32_t>(json.size());
    batch.table = Table::common_security_log;
    return batch;
}

DeadLetter letter() {
    return DeadLetter{.status = 400,
                      .request_id = "req-1",
                      .endpoint = "https://dce.example",
                      .dcr_id = "dcr-1",
                      .stream = "Custom-CommonSecurityLog",
                      .response = "bad"};
}

std::size_t files_in(const std::string& dir) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++n;
    return n;
}

TEST(DeadLetter, IsSyncedAndReadsBack) {
    TempDir tmp;
    const std::string dir = tmp.path() + "/dead";
    failing_sync::calls = 0;
    ASSERT_TRUE(write_dead_letter(dir, json_batch(), letter()));
    EXPECT_GE(failing_sync::calls.load(), 3) << "both files and the directory are synced before ok";
    const auto bases = list_dead_letters(dir);
    ASSERT_EQ(bases.size(), 1U);
    auto stored = read_dead_letter(bases[0], {"Custom-Syslog"});
    ASSERT_TRUE(stored) << stored.error().describe();
    EXPECT_EQ(stored->batch.rows, 2U);
    EXPECT_EQ(stored->stream, "Custom-CommonSecurityLog");
}

TEST(DeadLetter, AFailedSyncIsAnErrorAndLeavesNoFile) {
    TempDir tmp;
    const std::string dir = tmp.path() + "/dead";
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    const Status written = [&] {
        const failing_sync::Failing failing;
        return write_dead_letter(dir, json_batch(), letter());
    }();
    ASSERT_FALSE(written) << "ok although nothing reached the disk: the caller would ack the batch away";
    EXPECT_NE(written.error().describe().find("fdatasync"), std::string::npos) << written.error().describe();
    EXPECT_EQ(files_in(dir), 0U) << "a half-written dead letter (or its temporary) was left behind";
}

}  // namespace
}  // namespace cefd::test
