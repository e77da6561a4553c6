#include "stages/send/dead_letter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <ctime>

#include "engine/clock.h"
#include "stages/send/body.h"

namespace cefd {

namespace {

Status write_atomically(const std::string& path, const void* data, std::size_t size) {
    const std::string temporary = path + ".tmp";
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return Error{Errc::io, errno, "open " + temporary};
    const auto* p = static_cast<const char*>(data);
    std::size_t left = size;
    while (left > 0) {
        const ssize_t n = ::write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int err = errno;
            ::close(fd);
            ::unlink(temporary.c_str());
            return Error{Errc::io, err, "write " + temporary};
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    ::close(fd);
    if (::rename(temporary.c_str(), path.c_str()) != 0) return Error{Errc::io, errno, "rename " + path};
    return ok_status();
}

void append_json_string(std::string& out, std::string_view s) {
    out.push_back('"');
    for (const char ch : s) {
        const auto u = static_cast<unsigned char>(ch);
        if (ch == '"' || ch == '\\') {
            out.push_back('\\');
            out.push_back(ch);
        } else if (u < 0x20) {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\u%04x", u);
            out += escaped;
        } else {
            out.push_back(ch);
        }
    }
    out.push_back('"');
}

}  // namespace

Status write_dead_letter(const std::string& dir, const SealedBatch& batch, const DeadLetter& letter) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Error{Errc::io, errno, "mkdir " + dir};
    const std::int64_t now_ns = wall_clock_ns();
    const std::time_t seconds = now_ns / 1'000'000'000;
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    char iso[40];
    std::strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const std::string base = dir + "/" + stamp + "-" + letter.request_id;

    const auto json = gunzip_body(batch.body, batch.json_bytes);
    const void* plain = json ? static_cast<const void*>(json->data()) : static_cast<const void*>(batch.body.data());
    const std::size_t plain_size = json ? json->size() : batch.body.size();
    std::string compressed(ZSTD_compressBound(plain_size), '\0');
    const std::size_t n = ZSTD_compress(compressed.data(), compressed.size(), plain, plain_size, 3);
    if (ZSTD_isError(n)) return Error{Errc::unexpected, std::string("zstd: ") + ZSTD_getErrorName(n)};
    compressed.resize(n);
    if (auto s = write_atomically(base + ".json.zst", compressed.data(), compressed.size()); !s) return s;

    std::string meta = "{\"status\":" + std::to_string(letter.status) + ",\"request_id\":";
    append_json_string(meta, letter.request_id);
    meta += ",\"time\":";
    append_json_string(meta, iso);
    meta += ",\"endpoint\":";
    append_json_string(meta, letter.endpoint);
    meta += ",\"dcr_id\":";
    append_json_string(meta, letter.dcr_id);
    meta += ",\"stream\":";
    append_json_string(meta, letter.stream);
    meta += ",\"rows\":" + std::to_string(batch.rows) + ",\"json_bytes\":" + std::to_string(batch.json_bytes) +
            ",\"body_is_json\":" + (json ? "true" : "false") + ",\"response\":";
    append_json_string(meta, std::string_view(letter.response).substr(0, 4096));
    meta += "}\n";
    return write_atomically(base + ".meta.json", meta.data(), meta.size());
}

}  // namespace cefd
