// tests/unit/spool/spool_model_test.cpp: random operations (accept, next, ack, release, restart,
// damage a body) applied to the real spool and to a trivial in-memory model, compared after
// every step. The seed is printed on failure; SPOOL_MODEL_SEED=<n> replays one run.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include "tests/support/support.h"
#include "tests/unit/spool/spool_test_util.h"

namespace cefd::test {
namespace {

struct ModelRecord {
    std::size_t body_bytes = 0;
    std::uint32_t attempts = 0;
    bool in_flight = false;
    bool replayed = false;
    bool corrupt = false;    // its body on disk is damaged
    bool in_memory = false;  // mode always: the spool still holds the body as written
    std::uint64_t id = 0;  // learnt when first handed out
    std::optional<SpooledBatch> batch_holder;  // what the "sender" holds while in flight
};

/// Finds a record on disk by its creation time (make_batch makes it unique per seed).
std::optional<RecordLocation> find_by_created(const std::string& dir, std::int64_t created_ns) {
    for (const std::string& path : files_with_extension(dir, ".seg")) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        const auto size = static_cast<std::uint64_t>(::lseek(fd, 0, SEEK_END));
        std::uint64_t offset = 0;
        while (offset + spool::header_bytes <= size) {
            spool::HeaderBytes bytes;
            if (::pread(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)) != 64) break;
            const auto header = spool::decode_header(bytes);
            if (!header) break;
            if (header->created_ns == created_ns) {
                ::close(fd);
                return RecordLocation{path, offset, *header};
            }
            offset += spool::header_bytes + header->body_bytes;
        }
        ::close(fd);
    }
    return std::nullopt;
}

/// Percent of steps per operation; damage takes the rest.
struct Mix {
    unsigned accept = 30, next = 28, ack = 20, release = 10, restart = 6;
};

/// What a run must have exercised, at least (a fixed seed makes the counts stable).
struct Exercised {
    int delivered = 300, acks = 200, releases = 50, restarts = 50, damaged_skipped = 10;
    int from_memory = 0, damaged_from_memory = 0;  // at least as many (handoff_batches > 0 only)
};

void run_model(SpoolConfig::Mode mode, std::uint64_t seed, int steps, std::uint32_t handoff_batches = 0, Mix mix = {},
               Exercised least = {}) {
    SCOPED_TRACE("model seed " + std::to_string(seed) + " (rerun with SPOOL_MODEL_SEED=" +
                 std::to_string(seed) + ")");
    TempDir tmp;
    SpoolConfig config = small_config(tmp.path());
    config.mode = mode;
    config.overflow_memory_batches = 3;
    config.handoff_batches = handoff_batches;
    auto open = [&] {
        auto spool = Spool::open(config);
        EXPECT_TRUE(spool.ok());
        return std::move(spool).value();
    };
    std::unique_ptr<Spool> spool = open();
    std::mt19937_64 rng(seed);
    std::map<std::uint64_t, ModelRecord> model;  // by batch seed == acceptance order == id order
    std::uint64_t next_seed = 1;
    std::uint64_t acked = 0;
    std::uint64_t corrupt_seen = 0;
    std::uint64_t replayed_seen = 0;
    std::uint64_t from_memory = 0;
    struct {
        int delivered = 0, acks = 0, releases = 0, restarts = 0, damages = 0, damaged_skipped = 0, from_memory = 0,
            damaged_from_memory = 0;
    } done;

    auto pick_in_flight = [&]() -> std::optional<std::uint64_t> {
        std::vector<std::uint64_t> held;
        for (const auto& [s, r] : model)
            if (r.in_flight) held.push_back(s);
        if (held.empty()) return std::nullopt;
        return held[rng() % held.size()];
    };

    for (int step = 0; step < steps; ++step) {
        const unsigned op = static_cast<unsigned>(rng() % 100);
        std::string what;
        const unsigned to_next = mix.accept + mix.next, to_ack = to_next + mix.ack, to_release = to_ack + mix.release,
                       to_restart = to_release + mix.restart;
        if (op < mix.accept) {
            const std::uint64_t s = next_seed++;
            const std::size_t body = 50 + rng() % 1500;
            what = "accept " + std::to_string(s);
            ASSERT_TRUE(spool->accept(make_batch(s, body))) << "step " << step;
            // mode always: the body stays in memory while at most handoff_batches wait.
            std::size_t waiting = 1;
            for (const auto& [_, r] : model) waiting += r.in_flight ? 0 : 1;
            model[s] = ModelRecord{.body_bytes = body,
                                   .in_memory = mode == SpoolConfig::Mode::always && waiting <= config.handoff_batches};
        } else if (op < to_next) {
            what = "next";
            auto got = spool->next(0);
            // The model: the oldest record not in flight; damaged ones on the way are skipped.
            std::optional<std::uint64_t> expected;
            for (auto it = model.begin(); it != model.end();) {
                if (it->second.in_flight) {
                    ++it;
                    continue;
                }
                if (it->second.corrupt && !it->second.in_memory) {
                    ++corrupt_seen;
                    ++done.damaged_skipped;
                    it = model.erase(it);
                    continue;
                }
                expected = it->first;
                break;
            }
            if (!expected) {
                ASSERT_FALSE(got.has_value()) << "step " << step << ": spool handed out a batch the model lacks";
            } else {
                ASSERT_TRUE(got.has_value()) << "step " << step << ": expected seed " << *expected;
                ModelRecord& r = model[*expected];
                ASSERT_TRUE(same_batch(got->batch, make_batch(*expected, r.body_bytes)))
                    << "step " << step << ": expected seed " << *expected;
                EXPECT_EQ(got->attempts, r.attempts) << "step " << step;
                EXPECT_EQ(got->replayed, r.replayed) << "step " << step;
                if (r.id != 0) {
                    EXPECT_EQ(got->id, r.id) << "step " << step;
                }
                r.id = got->id;
                r.in_flight = true;
                if (r.in_memory) {
                    ++from_memory;
                    ++done.from_memory;
                    if (r.corrupt) ++done.damaged_from_memory;  // the copy in memory is intact
                }
                r.in_memory = false;  // handed out: a release reads it back from the disk
                ++done.delivered;
                // batches_replayed counts the first hand-out after a restart only.
                if (got->replayed && r.attempts == 0) ++replayed_seen;
                r.batch_holder = std::move(*got);
            }
        } else if (op < to_ack) {
            const auto s = pick_in_flight();
            if (!s) continue;
            what = "ack " + std::to_string(*s);
            spool->ack(model[*s].id);
            model.erase(*s);
            ++acked;
            ++done.acks;
        } else if (op < to_release) {
            const auto s = pick_in_flight();
            if (!s) continue;
            what = "release " + std::to_string(*s);
            ModelRecord& r = model[*s];
            spool->release(std::move(*r.batch_holder));
            r.batch_holder.reset();
            r.in_flight = false;
            ++r.attempts;
            ++done.releases;
        } else if (op < to_restart) {
            what = "restart";
            ++done.restarts;
            spool.reset();
            spool = open();
            acked = 0;
            corrupt_seen = 0;
            replayed_seen = 0;
            from_memory = 0;
            for (auto& [s, r] : model) {
                r.in_flight = false;
                r.in_memory = false;
                r.attempts = 0;
                r.replayed = true;
                r.batch_holder.reset();
            }
        } else {
            // Damage the body of a stored record the sender does not hold.
            std::vector<std::uint64_t> candidates;
            for (const auto& [s, r] : model)
                if (!r.in_flight && !r.corrupt) candidates.push_back(s);
            if (candidates.empty()) continue;
            const std::uint64_t s = candidates[rng() % candidates.size()];
            const auto where = find_by_created(tmp.path(), make_batch(s, 1).created_ns);
            if (!where) continue;  // mode overflow: still in memory
            what = "damage " + std::to_string(s);
            flip_byte(where->path, where->offset + spool::header_bytes + rng() % model[s].body_bytes);
            model[s].corrupt = true;
            ++done.damages;
        }
        SCOPED_TRACE("step " + std::to_string(step) + ": " + what);
        ASSERT_EQ(spool->pending(), model.size());
        ASSERT_EQ(read(spool->stats().batches_acked), acked);
        ASSERT_EQ(read(spool->stats().corrupt_records), corrupt_seen);
        ASSERT_EQ(read(spool->stats().batches_replayed), replayed_seen);
        ASSERT_EQ(read(spool->stats().batches_from_memory), from_memory);
        // A damaged body read back is a lost batch: counted as a drop (reason "damaged") too.
        ASSERT_EQ(read(spool->stats().dropped_batches), corrupt_seen);
    }

    // The run exercised what it claims to.
    EXPECT_GT(done.delivered, least.delivered);
    EXPECT_GT(done.acks, least.acks);
    EXPECT_GT(done.releases, least.releases);
    EXPECT_GT(done.restarts, least.restarts);
    EXPECT_GT(done.damaged_skipped, least.damaged_skipped);
    EXPECT_GE(done.from_memory, least.from_memory) << "handed out from memory";
    EXPECT_GE(done.damaged_from_memory, least.damaged_from_memory) << "damaged on disk, delivered intact from memory";

    // Drain: everything left is delivered exactly as the model says, then the disk is clean.
    for (auto& [s, r] : model) {
        if (r.in_flight) spool->ack(r.id);
    }
    std::erase_if(model, [](const auto& item) { return item.second.in_flight; });
    for (int i = 0; i < 100'000; ++i) {
        auto got = spool->next(0);
        if (!got) break;
        spool->ack(got->id);
    }
    EXPECT_EQ(spool->pending(), 0U);
    spool.reset();
    EXPECT_TRUE(files_with_extension(tmp.path(), ".seg").empty());
}

std::uint64_t model_seed(std::uint64_t fallback) {
    const char* text = std::getenv("SPOOL_MODEL_SEED");
    return text != nullptr ? std::strtoull(text, nullptr, 10) : fallback;
}

TEST(SpoolModel, AlwaysModeMatchesTheModel) { run_model(SpoolConfig::Mode::always, model_seed(20'240'601), 3'000); }

TEST(SpoolModel, AlwaysModeHandingBodiesOverFromMemoryMatchesTheModel) {
    // A sender that mostly keeps up (more hand-outs and acks, few restarts), so many bodies are
    // handed over from memory, some of them damaged on disk meanwhile.
    run_model(SpoolConfig::Mode::always, model_seed(31), 3'000, 4,
              Mix{.accept = 25, .next = 36, .ack = 27, .release = 4, .restart = 2},
              Exercised{.restarts = 20, .from_memory = 150, .damaged_from_memory = 10});
}

TEST(SpoolModel, OverflowModeMatchesTheModel) {
    run_model(SpoolConfig::Mode::overflow, model_seed(77), 3'000);
}

}  // namespace
}  // namespace cefd::test
