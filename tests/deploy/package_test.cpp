// The Debian package as an operator gets it: built with the real `cpack -G DEB` from this build
// tree, read with dpkg-deb, its binaries run from the extracted tree, its unit checked by
// systemd-analyze. Installing it on this machine (dpkg -i, then purge) changes the system, so
// that test runs only with CEFD_PACKAGE_INSTALL_TEST=1 (and as root).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/support.h"

namespace cefd {
namespace {

using test::run_command;

bool have(const std::string& tool) { return run_command("command -v " + tool + " >/dev/null 2>&1") == 0; }

// One package for the whole suite: cpack stages, strips and compresses every binary once.
class DebianPackage : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (!have("dpkg-deb")) {
            skip_reason_ = "dpkg-deb is missing (not a Debian system): the package cannot be built or read";
            return;
        }
        dir_ = new test::TempDir;
        const int rc = run_command("cd '" + std::string(CEFD_BINARY_DIR) + "' && '" + CEFD_CPACK_COMMAND +
                                       "' -G DEB -B '" + dir_->path() + "' 2>&1",
                                   &cpack_output_);
        std::string found;
        (void)run_command("ls '" + dir_->path() + "'/cefd_*.deb 2>/dev/null", &found);
        if (rc == 0 && !found.empty()) deb_ = found.substr(0, found.find('\n'));
        if (!deb_.empty()) {
            (void)run_command("dpkg-deb -x '" + deb_ + "' '" + dir_->file("root") + "'");
        }
    }
    static void TearDownTestSuite() {
        delete dir_;
        dir_ = nullptr;
    }
    void SetUp() override {
        if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
        ASSERT_FALSE(deb_.empty()) << "cpack -G DEB made no package:\n" << cpack_output_;
    }
    static std::string root(const std::string& relative) { return dir_->file("root") + "/" + relative; }

    static inline test::TempDir* dir_ = nullptr;
    static inline std::string deb_;
    static inline std::string cpack_output_;
    static inline std::string skip_reason_;
};

TEST_F(DebianPackage, ListsBinariesUnitSysctlAndConffile) {
    std::string listing;
    ASSERT_EQ(run_command("dpkg-deb -c '" + deb_ + "'", &listing), 0);
    for (const char* path :
         {"./usr/bin/cefd", "./usr/bin/cefd-loadgen", "./usr/bin/cefd-azure-standin", "./usr/bin/cefd-check",
          "./usr/lib/systemd/system/cefd.service", "./usr/lib/sysctl.d/99-cefd.conf", "./etc/cefd/cefd.toml",
          "./usr/share/doc/cefd/cefd.example.toml"}) {
        EXPECT_NE(listing.find(std::string(path) + "\n"), std::string::npos) << path << " missing from:\n" << listing;
    }
    // The config holds the endpoint (and may hold a secret): never readable by other users.
    EXPECT_TRUE(std::regex_search(listing, std::regex(R"(-rw-r----- root/root +\d+ [^\n]* \./etc/cefd/cefd\.toml\n)")))
        << listing;
    EXPECT_TRUE(std::regex_search(listing, std::regex(R"(-rwxr-xr-x root/root +\d+ [^\n]* \./usr/bin/cefd\n)")))
        << listing;
    // Only runtime files: no test binaries, benchmarks or headers.
    EXPECT_EQ(listing.find("test_"), std::string::npos) << listing;
    EXPECT_EQ(listing.find("bench"), std::string::npos) << listing;
    EXPECT_EQ(listing.find("/include/"), std::string::npos) << listing;
}

TEST_F(DebianPackage, MarksConfigAsConffileAndCreatesUserInPostinst) {
    std::string conffiles;
    ASSERT_EQ(run_command("dpkg-deb -I '" + deb_ + "' conffiles", &conffiles), 0);
    EXPECT_EQ(conffiles, "/etc/cefd/cefd.toml\n");
    std::string postinst;
    ASSERT_EQ(run_command("dpkg-deb -I '" + deb_ + "' postinst", &postinst), 0);
    EXPECT_NE(postinst.find("adduser --system --group --home /var/lib/cefd"), std::string::npos) << postinst;
    EXPECT_NE(postinst.find("install -d -o cefd -g cefd -m 0700 /var/lib/cefd"), std::string::npos) << postinst;
    std::string control;
    ASSERT_EQ(run_command("dpkg-deb -f '" + deb_ + "'", &control), 0);
    EXPECT_NE(control.find("Package: cefd\n"), std::string::npos) << control;
    // dpkg-shlibdeps found the libraries the binaries link.
    for (const char* dependency : {"adduser", "liburing2", "libcurl4", "libc6"}) {
        EXPECT_NE(control.find(dependency), std::string::npos) << dependency << " not in Depends:\n" << control;
    }
}

TEST_F(DebianPackage, BinariesRunFromExtractedPackage) {
    std::string version;
    ASSERT_EQ(run_command("'" + root("usr/bin/cefd") + "' --version 2>&1", &version), 0) << version;
    EXPECT_NE(version.find("cefd"), std::string::npos) << version;
    // The shipped config is valid as it stands: only its endpoint and DCR id are placeholders.
    // (A copy, because the extracted file belongs to whoever ran the test, not root:cefd.)
    test::TempDir scratch;
    test::write_file(scratch.file("cefd.toml"), test::read_file(root("etc/cefd/cefd.toml")), 0600);
    std::string check;
    EXPECT_EQ(
        run_command("'" + root("usr/bin/cefd") + "' check-config --config '" + scratch.file("cefd.toml") + "' 2>&1",
                    &check),
        0)
        << check;
    for (const char* tool : {"cefd-loadgen", "cefd-azure-standin", "cefd-check"}) {
        std::string help;
        EXPECT_NE(run_command("'" + root(std::string("usr/bin/") + tool) + "' --help >/dev/null 2>&1", &help), 127)
            << tool << " does not start";
    }
}

// systemd-analyze checks the unit the package ships. Its ExecStart names /usr/bin/cefd, which
// exists only once installed, so the copy checked here points at the extracted binary.
TEST_F(DebianPackage, UnitPassesSystemdAnalyzeVerify) {
    if (!have("systemd-analyze")) GTEST_SKIP() << "systemd-analyze is missing (apt-get install systemd)";
    test::TempDir scratch;
    // Can systemd-analyze verify anything here? Some containers lack what it needs.
    test::write_file(scratch.file("probe.service"), "[Service]\nExecStart=/bin/true\n", 0644);
    std::string probe;
    if (run_command("systemd-analyze verify '" + scratch.file("probe.service") + "' 2>&1", &probe) != 0) {
        GTEST_SKIP() << "systemd-analyze verify cannot run in this container: " << probe;
    }
    std::string unit = test::read_file(root("usr/lib/systemd/system/cefd.service"));
    ASSERT_NE(unit.find("ExecStart=/usr/bin/cefd run --config /etc/cefd/cefd.toml"), std::string::npos) << unit;
    unit = std::regex_replace(unit, std::regex("/usr/bin/cefd"), root("usr/bin/cefd"));
    test::write_file(scratch.file("cefd.service"), unit, 0644);
    std::string output;
    EXPECT_EQ(run_command("systemd-analyze verify '" + scratch.file("cefd.service") + "' 2>&1", &output), 0) << output;
    EXPECT_EQ(output, "") << "systemd-analyze verify warns:\n" << output;
}

TEST_F(DebianPackage, UnitSecurityExposureAtMostTwo) {
    if (!have("systemd-analyze")) GTEST_SKIP() << "systemd-analyze is missing (apt-get install systemd)";
    std::string output;
    ASSERT_EQ(run_command("systemd-analyze security --offline=true --no-pager '" +
                              root("usr/lib/systemd/system/cefd.service") + "' 2>&1",
                          &output),
              0)
        << output;
    std::smatch match;
    ASSERT_TRUE(std::regex_search(output, match, std::regex(R"(Overall exposure level for cefd\.service: (\d+\.\d))")))
        << output;
    EXPECT_LE(std::stod(match[1].str()), 2.0) << output;
    // io_uring stays allowed by the system call filter (else the receivers fall back to recvmmsg).
    const std::string unit = test::read_file(root("usr/lib/systemd/system/cefd.service"));
    EXPECT_NE(unit.find("SystemCallFilter=@system-service io_uring_setup io_uring_enter io_uring_register"),
              std::string::npos);
}

TEST_F(DebianPackage, InstallsWithDpkgAndRunsAsCefdUser) {
    if (std::getenv("CEFD_PACKAGE_INSTALL_TEST") == nullptr)
        GTEST_SKIP() << "installs on this machine: opt in with CEFD_PACKAGE_INSTALL_TEST=1";
    if (::geteuid() != 0) GTEST_SKIP() << "dpkg -i needs root";
    if (!have("dpkg")) GTEST_SKIP() << "dpkg is missing";
    std::string output;
    ASSERT_EQ(run_command("dpkg -i '" + deb_ + "' 2>&1", &output), 0) << output;
    std::string passwd;
    EXPECT_EQ(run_command("getent passwd cefd", &passwd), 0) << "postinst created no cefd user";
    EXPECT_NE(passwd.find(":/var/lib/cefd:"), std::string::npos) << passwd;
    std::string owner;
    EXPECT_EQ(run_command("stat -c '%U %a' /var/lib/cefd", &owner), 0);
    EXPECT_EQ(owner, "cefd 700\n");
    EXPECT_EQ(run_command("stat -c '%U:%G %a' /etc/cefd/cefd.toml", &owner), 0);
    EXPECT_EQ(owner, "root:cefd 640\n");
    EXPECT_EQ(run_command("/usr/bin/cefd --version 2>&1", &output), 0) << output;
    // The service user can read its config, and the config is valid. With the unit's one
    // capability: check-config also checks that port 514 can be bound.
    EXPECT_EQ(run_command("setpriv --reuid=cefd --regid=cefd --init-groups --inh-caps=+net_bind_service "
                          "--ambient-caps=+net_bind_service /usr/bin/cefd check-config --config "
                          "/etc/cefd/cefd.toml 2>&1",
                          &output),
              0)
        << output;
    // An admin deleted the conffile; an upgrade (here the same package again) must still configure.
    ASSERT_EQ(run_command("rm /etc/cefd/cefd.toml"), 0);
    EXPECT_EQ(run_command("dpkg -i '" + deb_ + "' 2>&1", &output), 0) << output;
    EXPECT_EQ(run_command("dpkg --purge cefd 2>&1", &output), 0) << output;
    EXPECT_NE(run_command("test -e /usr/bin/cefd"), 0) << "purge left /usr/bin/cefd";
    EXPECT_NE(run_command("test -e /var/lib/cefd"), 0) << "purge left /var/lib/cefd";
}

// The configs deploy/ ships (package, container image) are valid as they stand: only their
// endpoint and DCR id are placeholders. Checked with the build tree's cefd, so this runs
// without dpkg too.
TEST(ShippedConfigs, PassCheckConfig) {
    for (const char* config : {"deploy/cefd.toml", "deploy/docker/cefd.toml"}) {
        test::TempDir scratch;  // a 0600 copy: a checkout may be world-readable, which cefd refuses
        test::write_file(scratch.file("cefd.toml"), test::read_file(test::source_path(config)), 0600);
        std::string output;
        EXPECT_EQ(run_command("'" + test::binary_path("engine/pipeline/cefd") + "' check-config --config '" +
                                  scratch.file("cefd.toml") + "' 2>&1",
                              &output),
                  0)
            << config << ": " << output;
    }
}

}  // namespace
}  // namespace cefd
