#include "stages/send/dead_letter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <dirent.h>
#include <simdjson.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <fstream>
#include <sstream>

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
    // On disk before the rename, and the rename on disk (sync_dir) before the caller acks the
    // batch out of the spool: after a crash the batch is in one place or the other.
    if (::fdatasync(fd) != 0) {
        const int err = errno;
        ::close(fd);
        ::unlink(temporary.c_str());
        return Error{Errc::io, err, "fdatasync " + temporary};
    }
    ::close(fd);
    if (::rename(temporary.c_str(), path.c_str()) != 0) return Error{Errc::io, errno, "rename " + path};
    return ok_status();
}

Status sync_dir(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Error{Errc::io, errno, "open " + dir};
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return Error{Errc::io, err, "fsync " + dir};
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
    const std::string iso = utc_iso8601(seconds);
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
    if (auto s = write_atomically(base + ".meta.json", meta.data(), meta.size()); !s) return s;
    return sync_dir(dir);
}

std::vector<std::string> list_dead_letters(const std::string& dir) {
    std::vector<std::string> bases;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return bases;
    constexpr std::string_view suffix = ".json.zst";
    while (const dirent* entry = ::readdir(d)) {
        const std::string_view name = entry->d_name;
        if (name.size() > suffix.size() && name.ends_with(suffix))
            bases.push_back(dir + "/" + std::string(name.substr(0, name.size() - suffix.size())));
    }
    ::closedir(d);
    std::sort(bases.begin(), bases.end());
    return bases;
}

namespace {

Result<std::string> read_whole(const std::string& path, std::size_t max_bytes) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Error{Errc::io, errno, "cannot read " + path};
    std::string out;
    out.resize(max_bytes + 1);
    in.read(out.data(), static_cast<std::streamsize>(out.size()));
    out.resize(static_cast<std::size_t>(in.gcount()));
    if (out.size() > max_bytes) return Error{Errc::io, path + " is larger than " + std::to_string(max_bytes) + " bytes"};
    return out;
}

}  // namespace

Result<StoredDeadLetter> read_dead_letter(const std::string& base, const std::vector<std::string>& syslog_streams) {
    // A dead letter holds one request body: at most the 1 MiB service limit, so 64 MiB is
    // generous and still bounds what a stray file can make us allocate.
    constexpr std::size_t max_json_bytes = 64ULL << 20;
    auto meta_text = read_whole(base + ".meta.json", 1 << 20);
    if (!meta_text) return meta_text.error();
    simdjson::dom::parser parser;
    simdjson::dom::element meta;
    std::uint64_t rows = 0;
    std::uint64_t json_bytes = 0;
    bool body_is_json = false;
    std::string_view stream;
    if (parser.parse(*meta_text).get(meta) != simdjson::SUCCESS || meta["rows"].get(rows) != simdjson::SUCCESS ||
        meta["json_bytes"].get(json_bytes) != simdjson::SUCCESS || meta["stream"].get(stream) != simdjson::SUCCESS)
        return Error{Errc::io, base + ".meta.json is not dead-letter metadata"};
    if (meta["body_is_json"].get(body_is_json) != simdjson::SUCCESS || !body_is_json)
        return Error{Errc::io, base + ".json.zst holds a body that was not valid gzip JSON; it cannot be replayed"};
    if (rows == 0 || rows > UINT32_MAX || json_bytes > max_json_bytes)
        return Error{Errc::io, base + ".meta.json: rows or json_bytes out of range"};

    auto compressed = read_whole(base + ".json.zst", max_json_bytes);
    if (!compressed) return compressed.error();
    const unsigned long long size = ZSTD_getFrameContentSize(compressed->data(), compressed->size());
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size != json_bytes)
        return Error{Errc::io, base + ".json.zst is not a zstd frame of the recorded size"};
    std::string json(static_cast<std::size_t>(size), '\0');
    const std::size_t n = ZSTD_decompress(json.data(), json.size(), compressed->data(), compressed->size());
    if (ZSTD_isError(n) || n != json.size()) return Error{Errc::io, base + ".json.zst is damaged"};
    if (json.empty() || json.front() != '[' || json.back() != ']')
        return Error{Errc::io, base + ".json.zst does not hold a JSON array"};

    StoredDeadLetter letter;
    letter.stream = std::string(stream);
    letter.batch.body = gzip_body(json);
    letter.batch.rows = static_cast<std::uint32_t>(rows);
    letter.batch.json_bytes = static_cast<std::uint32_t>(json.size());
    letter.batch.created_ns = wall_clock_ns();
    letter.batch.first_receive_ns = letter.batch.last_receive_ns = letter.batch.created_ns;
    const bool syslog = std::find(syslog_streams.begin(), syslog_streams.end(), letter.stream) != syslog_streams.end();
    letter.batch.table = syslog ? Table::syslog : Table::common_security_log;
    return letter;
}

}  // namespace cefd
