// tests/unit/spool/spool_test_util.h: what the spool tests share: deterministic batches, a
// small config, and a reader of the on-disk format that finds a record by id (to damage it).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "engine/batch_types.h"
#include "stages/spool/record.h"
#include "stages/spool/spool.h"

namespace cefd::test {

/// A batch whose every field is a function of `seed`, so a test can check what came back.
inline SealedBatch make_batch(std::uint64_t seed, std::size_t body_bytes = 200) {
    SealedBatch batch;
    batch.body.resize(body_bytes);
    std::uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (auto& b : batch.body) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b = static_cast<std::byte>(x);
    }
    batch.rows = static_cast<std::uint32_t>(seed % 97 + 1);
    batch.json_bytes = static_cast<std::uint32_t>(body_bytes * 5);
    batch.first_receive_ns = static_cast<std::int64_t>(seed) * 1000;
    batch.last_receive_ns = static_cast<std::int64_t>(seed) * 1000 + 7;
    batch.created_ns = static_cast<std::int64_t>(seed) * 1000 + 9;
    batch.table = seed % 2 == 0 ? Table::common_security_log : Table::syslog;
    return batch;
}

inline bool same_batch(const SealedBatch& a, const SealedBatch& b) {
    return a.body == b.body && a.rows == b.rows && a.json_bytes == b.json_bytes &&
           a.first_receive_ns == b.first_receive_ns && a.last_receive_ns == b.last_receive_ns &&
           a.created_ns == b.created_ns && a.table == b.table;
}

inline SpoolConfig small_config(const std::string& dir) {
    SpoolConfig config;
    config.dir = dir;
    config.fsync = SpoolConfig::Fsync::never;
    config.segment_bytes = 4096;
    config.max_bytes = 1ULL << 30;
    return config;
}

inline std::vector<std::string> files_with_extension(const std::string& dir, const std::string& ext) {
    std::vector<std::string> out;
    if (!std::filesystem::exists(dir)) return out;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() == ext) out.push_back(entry.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

inline std::size_t count_files(const std::string& dir) {
    if (!std::filesystem::exists(dir)) return 0;
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++n;
    return n;
}

struct RecordLocation {
    std::string path;
    std::uint64_t offset = 0;
    spool::RecordHeader header;
};

/// Walks every segment in `dir` (valid headers only) and returns where record `id` is.
inline std::optional<RecordLocation> find_record(const std::string& dir, std::uint64_t id) {
    for (const std::string& path : files_with_extension(dir, ".seg")) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        const auto size = static_cast<std::uint64_t>(::lseek(fd, 0, SEEK_END));
        std::uint64_t offset = 0;
        while (offset + spool::header_bytes <= size) {
            spool::HeaderBytes bytes;
            if (::pread(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)) !=
                static_cast<ssize_t>(bytes.size()))
                break;
            const auto header = spool::decode_header(bytes);
            if (!header) break;
            if (header->id == id) {
                ::close(fd);
                return RecordLocation{path, offset, *header};
            }
            offset += spool::header_bytes + header->body_bytes;
        }
        ::close(fd);
    }
    return std::nullopt;
}

/// XORs one byte of a file with 0xff.
inline void flip_byte(const std::string& path, std::uint64_t offset) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    unsigned char c = 0;
    if (::pread(fd, &c, 1, static_cast<off_t>(offset)) == 1) {
        c ^= 0xffU;
        [[maybe_unused]] const auto n = ::pwrite(fd, &c, 1, static_cast<off_t>(offset));
    }
    ::close(fd);
}

inline std::uint64_t file_size(const std::string& path) {
    return static_cast<std::uint64_t>(std::filesystem::file_size(path));
}

}  // namespace cefd::test
