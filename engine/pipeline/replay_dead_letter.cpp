// engine/pipeline/replay_dead_letter.cpp: dead letters back into the spool (see the header).
#include "engine/pipeline/replay_dead_letter.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "engine/log.h"
#include "engine/pipeline/config.h"
#include "stages/send/dead_letter.h"
#include "stages/spool/spool.h"

namespace cefd {

namespace {

constexpr const char* replay_usage = "usage: cefd replay-dead-letter --config FILE [DIR]   (DIR: azure.dead_letter_dir)\n";

/// The file name after the last '/'.
std::string leaf(const std::string& path) {
    const std::size_t slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::vector<std::string> dead_letter_syslog_streams(const AzureConfig& azure) {
    std::vector<std::string> streams{azure.target.syslog_stream, "Microsoft-Syslog"};
    for (const auto& t : azure.extra_targets) streams.push_back(t.syslog_stream);
    return streams;
}

int replay_dead_letter_main(int argc, char** argv) {
    std::string config_path;
    std::string dir;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if ((arg == "--config" || arg == "-c") && i + 1 < argc) {
            config_path = argv[++i];
        } else if (arg.starts_with("--config=")) {
            config_path = arg.substr(9);
        } else if (arg == "--help" || arg == "-h") {
            std::fputs(replay_usage, stdout);
            return 0;
        } else if (!arg.starts_with("-") && dir.empty()) {
            dir = arg;
        } else {
            std::fprintf(stderr, "cefd replay-dead-letter: unexpected argument %s\n%s", arg.c_str(), replay_usage);
            return 2;
        }
    }
    if (config_path.empty()) {
        std::fputs(replay_usage, stderr);
        return 2;
    }
    ConfigErrors errors;
    auto config = load_config_file(config_path, errors);
    if (!config) {
        std::fprintf(stderr, "cefd: %zu problem%s in %s:\n", errors.list().size(), errors.list().size() == 1 ? "" : "s",
                     config_path.c_str());
        for (const auto& problem : errors.list()) std::fprintf(stderr, "  %s\n", problem.c_str());
        return 2;
    }
    const bool dir_named = !dir.empty();
    if (!dir_named) dir = config->azure.dead_letter_dir;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    // A typo in DIR, or a directory this user cannot list, must not read as "0 files, done".
    // Only the configured directory may be missing: it appears with the first dead letter.
    {
        struct stat st {};
        const char* problem = nullptr;
        if (::stat(dir.c_str(), &st) != 0) {
            if (!dir_named && errno == ENOENT) {
                std::printf("replay-dead-letter: no dead letters (%s does not exist yet)\n", dir.c_str());
                return 0;
            }
            problem = std::strerror(errno);
        } else if (!S_ISDIR(st.st_mode)) {
            problem = "not a directory";
        } else if (::access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
            problem = std::strerror(errno);
        }
        if (problem != nullptr) {
            std::fprintf(stderr, "cefd replay-dead-letter: cannot use the directory %s: %s\n", dir.c_str(), problem);
            return 2;
        }
    }

    // Durable before the file is moved: on disk, synced, whatever the running config says.
    SpoolConfig spool_config = config->spool;
    spool_config.mode = SpoolConfig::Mode::always;
    spool_config.fsync = SpoolConfig::Fsync::batch;
    // Never make room by deleting batches that wait undelivered (drop_oldest, the default) for
    // batches Azure refused once: a full spool refuses the letter, and the replay stops (exit 1).
    spool_config.when_full = SpoolConfig::WhenFull::drop_newest;
    auto spool = Spool::open(spool_config);
    if (!spool) {
        // The usual cause is the lock: a running cefd owns this spool.
        std::fprintf(stderr, "cefd replay-dead-letter: %s (stop cefd first: it must not run on the same spool)\n",
                     spool.error().describe().c_str());
        return 2;
    }

    const std::vector<std::string> syslog_streams = dead_letter_syslog_streams(config->azure);
    const std::string replayed_dir = dir + "/replayed";
    const std::vector<std::string> letters = list_dead_letters(dir);
    if (!letters.empty() && ::mkdir(replayed_dir.c_str(), 0700) == 0) {
        // Run with sudo: give replayed/ to the dead-letter directory's owner (the service user),
        // as the spool does with its files, so a later run as that user can move files into it.
        if (struct stat st{}; ::geteuid() == 0 && ::stat(dir.c_str(), &st) == 0 && st.st_uid != 0 &&
                              ::chown(replayed_dir.c_str(), st.st_uid, st.st_gid) != 0)
            std::fprintf(stderr, "cefd replay-dead-letter: cannot give %s to uid %u: %s\n", replayed_dir.c_str(),
                         static_cast<unsigned>(st.st_uid), std::strerror(errno));
    } else if (!letters.empty() && errno != EEXIST) {
        std::fprintf(stderr, "cefd replay-dead-letter: cannot create %s: %s\n", replayed_dir.c_str(), std::strerror(errno));
        return 1;
    }

    std::size_t files = 0;
    std::size_t batches = 0;
    std::uint64_t rows = 0;
    std::size_t skipped = 0;
    bool refused = false;
    for (const std::string& base : letters) {
        ++files;
        auto letter = read_dead_letter(base, syslog_streams);
        if (!letter) {
            ++skipped;
            std::fprintf(stderr, "cefd replay-dead-letter: skipped: %s\n", letter.error().describe().c_str());
            continue;
        }
        const std::uint32_t letter_rows = letter->batch.rows;
        if (!(*spool)->accept(std::move(letter->batch))) {
            // Full or a write error: the spool counted and logged it. Leave this and the rest.
            std::fprintf(stderr, "cefd replay-dead-letter: the spool refused %s; stopping (see the log line above)\n",
                         leaf(base).c_str());
            refused = true;
            break;
        }
        ++batches;
        rows += letter_rows;
        // Accepted and synced: moving the pair makes a second run skip it.
        for (const char* suffix : {".json.zst", ".meta.json"}) {
            const std::string from = base + suffix;
            const std::string to = replayed_dir + "/" + leaf(base) + suffix;
            if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT)
                std::fprintf(stderr, "cefd replay-dead-letter: cannot move %s to %s: %s (it would be replayed again)\n",
                             from.c_str(), to.c_str(), std::strerror(errno));
        }
    }
    std::printf("replay-dead-letter: %zu files, %zu batches (%llu rows) put back into the spool %s, %zu skipped "
                "(damaged, left in %s)%s\n",
                files, batches, static_cast<unsigned long long>(rows), spool_config.dir.c_str(), skipped, dir.c_str(),
                refused ? "; stopped early: the spool refused a batch" : "");
    return skipped > 0 || refused ? 1 : 0;
}

}  // namespace cefd
