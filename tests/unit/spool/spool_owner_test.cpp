// `sudo cefd replay-dead-letter` (or `sudo cefd check`) opens the service's spool as root. What
// it writes there must stay readable by the service user, or those batches are stranded.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "stages/spool/spool.h"
#include "tests/support/support.h"
#include "tests/unit/spool/spool_test_util.h"

namespace cefd::test {
namespace {

constexpr uid_t service_uid = 65534;  // nobody: any user but root
constexpr gid_t service_gid = 65534;

TEST(SpoolOwner, FilesRootCreatesInTheServicesSpoolBelongToTheService) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (the CI test command runs as root)";
    TempDir tmp;
    const std::string dir = tmp.path() + "/spool";
    ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(::chown(dir.c_str(), service_uid, service_gid), 0);  // as the package's StateDirectory= leaves it
    SpoolConfig config = small_config(dir);                        // 4 KiB segments: several of them

    {  // root puts 5 batches into the (still empty) spool, then stops
        auto spool = Spool::open(config);
        ASSERT_TRUE(spool) << spool.error().describe();
        for (std::uint64_t i = 1; i <= 5; ++i) ASSERT_TRUE((*spool)->accept(make_batch(i, 1500)));
    }
    std::size_t files = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
        struct stat st {};
        ASSERT_EQ(::lstat(entry.path().c_str(), &st), 0);
        EXPECT_EQ(st.st_uid, service_uid) << entry.path() << " belongs to uid " << st.st_uid;
        EXPECT_EQ(st.st_gid, service_gid) << entry.path();
        ++files;
    }
    EXPECT_GE(files, 5U) << "LOCK, IDS, corrupt/ and at least one segment and ack log";

    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // the service starts again, as its own user
        if (::setresgid(service_gid, service_gid, service_gid) != 0 ||
            ::setresuid(service_uid, service_uid, service_uid) != 0)
            ::_exit(100);
        auto spool = Spool::open(config);
        if (!spool) ::_exit(101);
        std::size_t read_back = 0;
        while (auto batch = (*spool)->next(0)) {
            (*spool)->ack(batch->id);
            ++read_back;
        }
        ::_exit(static_cast<int>(read_back * 10 + (*spool)->unreadable_segments()));
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 50) << "batches read back * 10 + unreadable segments (100/101: could not start)";
}

}  // namespace
}  // namespace cefd::test
