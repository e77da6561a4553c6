#include "engine/capture/capture.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "engine/capture/capture_format.h"
#include "engine/clock.h"
#include "engine/log.h"

namespace cefd {
namespace {

static_assert(std::endian::native == std::endian::little, "capture_format.h stores integers little-endian");

// The capture thread sleeps this long when every queue is empty: at 150k/s of 1 KB messages a
// lane queues 1.5 MB in 10 ms, well inside the 8 MiB default queue.
constexpr auto idle_sleep = std::chrono::milliseconds(10);
// Records handed to zstd at once (see write_record).
constexpr std::size_t pending_buffer_bytes = 256 * 1024;

std::string file_name(std::uint64_t number) {
    const auto unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
    return std::string(capture_format::file_prefix) + std::to_string(unix_ms) + "-" + std::to_string(number) +
           capture_format::file_suffix;
}

}  // namespace

void CaptureConfig::validate(ConfigErrors& errors) const {
    if (!enabled()) return;
    errors.check("capture.queue_bytes", std::has_single_bit(queue_bytes) && queue_bytes >= (1U << 20),
                 "must be a power of two of at least 1048576");
    errors.check("capture.rotate_bytes", rotate_bytes >= (1ULL << 20), "must be at least 1048576");
    errors.check("capture.max_bytes", max_bytes >= rotate_bytes, "must be at least capture.rotate_bytes");
}

Capturer::Capturer(const CaptureConfig& config) : config_(config) {}

Result<std::unique_ptr<Capturer>> Capturer::open(const CaptureConfig& config, unsigned lanes) {
    auto capturer = std::unique_ptr<Capturer>(new Capturer(config));
    if (::mkdir(config.dir.c_str(), 0750) != 0 && errno != EEXIST) {
        return Error{Errc::io, errno, "cannot create capture.dir " + config.dir};
    }
    // Files of an earlier run count against max_bytes too, oldest (by name: unix ms) first.
    if (DIR* directory = ::opendir(config.dir.c_str())) {
        std::vector<std::string> names;
        while (const dirent* entry = ::readdir(directory)) {
            const std::string_view name = entry->d_name;
            if (name.starts_with(capture_format::file_prefix) && name.ends_with(capture_format::file_suffix)) {
                names.emplace_back(name);
            }
        }
        ::closedir(directory);
        std::sort(names.begin(), names.end());
        for (const std::string& name : names) {
            struct stat info {};
            const std::string path = config.dir + "/" + name;
            if (::stat(path.c_str(), &info) == 0) {
                capturer->files_.emplace_back(path, static_cast<std::uint64_t>(info.st_size));
                capturer->total_bytes_ += static_cast<std::uint64_t>(info.st_size);
            }
        }
    }
    for (unsigned i = 0; i < lanes; ++i) capturer->queues_.push_back(std::make_unique<Queue>(config.queue_bytes));
    capturer->context_ = ZSTD_createCCtx();
    if (capturer->context_ == nullptr) return Error{Errc::io, 0, "zstd: cannot create a compression context"};
    ZSTD_CCtx_setParameter(capturer->context_, ZSTD_c_compressionLevel, 1);
    capturer->out_.resize(ZSTD_CStreamOutSize());
    capturer->pending_.resize(pending_buffer_bytes);
    return capturer;
}

Capturer::~Capturer() {
    stop();
    if (context_ != nullptr) ZSTD_freeCCtx(context_);
}

void Capturer::start() {
    thread_ = std::jthread([this](std::stop_token stop) {
        try {
            run(stop);
        } catch (...) {
            CEFD_LOG(error, "capture: the capture thread failed; capture stops, cefd goes on");
        }
    });
}

void Capturer::stop() {
    if (!thread_.joinable()) return;
    thread_.request_stop();
    thread_.join();
}

void Capturer::run(std::stop_token stop) {
    while (!stop.stop_requested()) {
        if (drain() == 0) std::this_thread::sleep_for(idle_sleep);
    }
    drain();  // what the workers queued before they stopped
    close_file();
}

std::size_t Capturer::drain() {
    std::size_t taken = 0;
    for (const auto& queue : queues_) {
        // Bounded per visit so one busy lane cannot starve the others' queues.
        for (int i = 0; i < 4096; ++i) {
            const std::span<const std::byte> record = queue->ring.front();
            if (record.empty()) break;
            MessageMeta meta;
            std::memcpy(&meta, record.data(), sizeof meta);
            write_record(meta, std::string_view(reinterpret_cast<const char*>(record.data()) + sizeof meta,
                                                record.size() - sizeof meta));
            queue->ring.pop();
            ++taken;
        }
    }
    if (taken > 0) {
        flush_pending();
        add(stats_.captured, taken);
    }
    return taken;
}

bool Capturer::write_record(const MessageMeta& meta, std::string_view message) {
    if (fd_ < 0 && !open_file()) return false;
    // Records gather in pending_ (reserved once) and go to zstd in large pieces: one
    // ZSTD_compressStream2 call per record pair cost more than the compression itself.
    char* header = pending_.data() + pending_bytes_;
    if (pending_bytes_ + capture_format::record_header_bytes + message.size() > pending_.size()) {
        if (!flush_pending()) return false;
        header = pending_.data();
        if (capture_format::record_header_bytes + message.size() > pending_.size()) {
            // A message larger than the buffer goes straight to zstd.
            char alone[capture_format::record_header_bytes];
            encode_header(alone, meta, message.size());
            return emit(alone, sizeof alone, false) && emit(message.data(), message.size(), false);
        }
    }
    encode_header(header, meta, message.size());
    std::memcpy(header + capture_format::record_header_bytes, message.data(), message.size());
    pending_bytes_ += capture_format::record_header_bytes + message.size();
    return true;
}

void Capturer::encode_header(char* header, const MessageMeta& meta, std::size_t length) noexcept {
    std::memset(header, 0, capture_format::record_header_bytes);
    std::memcpy(header, &meta.receive_time_ns, 8);
    header[8] = static_cast<char>(meta.transport);
    header[9] = static_cast<char>(meta.source.family);
    std::memcpy(header + 10, &meta.source.port, 2);
    std::memcpy(header + 12, meta.source.addr, 16);
    const auto length32 = static_cast<std::uint32_t>(length);
    std::memcpy(header + 28, &length32, 4);
}

bool Capturer::flush_pending() {
    if (pending_bytes_ == 0 || fd_ < 0) {
        pending_bytes_ = 0;
        return fd_ >= 0;
    }
    const bool ok = emit(pending_.data(), pending_bytes_, false);
    pending_bytes_ = 0;
    if (ok && file_bytes_ >= config_.rotate_bytes) close_file();
    return ok;
}

bool Capturer::open_file() {
    path_ = config_.dir + "/" + file_name(++file_number_);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd_ < 0) {
        add(stats_.write_errors);
        CEFD_LOG_EVERY(60, error, "capture: cannot create %s: %s", path_.c_str(), std::strerror(errno));
        return false;
    }
    add(stats_.files);
    file_bytes_ = 0;
    files_.emplace_back(path_, 0);
    ZSTD_CCtx_reset(context_, ZSTD_reset_session_only);
    char header[capture_format::file_header_bytes] = {};
    std::memcpy(header, capture_format::magic, 8);
    std::memcpy(header + 8, &capture_format::version, 4);
    const auto record_header = static_cast<std::uint32_t>(capture_format::record_header_bytes);
    std::memcpy(header + 12, &record_header, 4);
    return emit(header, sizeof header, false);
}

void Capturer::close_file() {
    if (fd_ < 0) return;
    if (pending_bytes_ > 0) {
        emit(pending_.data(), pending_bytes_, false);
        pending_bytes_ = 0;
        if (fd_ < 0) return;  // the write failed and closed the file
    }
    emit(nullptr, 0, true);  // ends the zstd frame
    ::close(fd_);
    fd_ = -1;
    enforce_max_bytes();
}

void Capturer::enforce_max_bytes() {
    // Never the file being written (there is none here: close_file() just closed it).
    while (total_bytes_ > config_.max_bytes && !files_.empty()) {
        const auto [path, bytes] = files_.front();
        files_.pop_front();
        ::unlink(path.c_str());
        total_bytes_ -= std::min(total_bytes_, bytes);
        add(stats_.deleted_files);
    }
}

bool Capturer::emit(const void* data, std::size_t bytes, bool end) {
    ZSTD_inBuffer in{data, bytes, 0};
    for (;;) {
        ZSTD_outBuffer out{out_.data(), out_.size(), 0};
        const std::size_t remaining = ZSTD_compressStream2(context_, &out, &in, end ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(remaining)) {
            add(stats_.write_errors);
            CEFD_LOG_EVERY(60, error, "capture: zstd: %s", ZSTD_getErrorName(remaining));
            return false;
        }
        for (std::size_t written = 0; written < out.pos;) {
            const ssize_t rc = ::write(fd_, out_.data() + written, out.pos - written);
            if (rc < 0 && errno == EINTR) continue;
            if (rc <= 0) {
                // Disk full or gone: this file ends here; the next record opens a new one.
                add(stats_.write_errors);
                CEFD_LOG_EVERY(60, error, "capture: write %s: %s", path_.c_str(), std::strerror(errno));
                ::close(fd_);
                fd_ = -1;
                return false;
            }
            written += static_cast<std::size_t>(rc);
        }
        file_bytes_ += out.pos;
        total_bytes_ += out.pos;
        files_.back().second += out.pos;
        add(stats_.bytes_written, out.pos);
        if (end ? remaining == 0 : in.pos == in.size) return true;
    }
}

void Capturer::register_metrics(MetricsRegistry& metrics) {
    for (std::size_t i = 0; i < queues_.size(); ++i) {
        metrics.add("capture_dropped_total", "Messages left out of the capture: the lane's capture queue was full.",
                    "lane=\"" + std::to_string(i) + "\"", &queues_[i]->dropped);
    }
    metrics.add("capture_messages_total", "Messages written to capture files.", "", &stats_.captured);
    metrics.add("capture_bytes_total", "Compressed bytes written to capture files.", "", &stats_.bytes_written);
    metrics.add("capture_files_total", "Capture files opened.", "", &stats_.files);
    metrics.add("capture_deleted_files_total", "Oldest capture files deleted to stay under capture.max_bytes.", "",
                &stats_.deleted_files);
    metrics.add("capture_write_errors_total", "Capture files that could not be created or written.", "",
                &stats_.write_errors);
}

// ---- reader ----------------------------------------------------------------------------------

Result<std::unique_ptr<CaptureReader>> CaptureReader::open(const std::string& path) {
    auto reader = std::unique_ptr<CaptureReader>(new CaptureReader());
    reader->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (reader->fd_ < 0) return Error{Errc::io, errno, "cannot open " + path};
    reader->context_ = ZSTD_createDCtx();
    if (reader->context_ == nullptr) return Error{Errc::io, 0, "zstd: cannot create a decompression context"};
    reader->in_.resize(ZSTD_DStreamInSize());
    if (!reader->fill(capture_format::file_header_bytes) ||
        std::memcmp(reader->data_.data(), capture_format::magic, 8) != 0) {
        return Error{Errc::io, 0, path + " is not a cefd capture file"};
    }
    std::uint32_t record_header = 0;
    std::memcpy(&record_header, reader->data_.data() + 12, 4);
    if (record_header < capture_format::record_header_bytes || record_header > 4096) {
        return Error{Errc::io, 0, path + ": bad record header size"};
    }
    reader->record_header_bytes_ = record_header;
    reader->position_ = capture_format::file_header_bytes;
    return reader;
}

CaptureReader::~CaptureReader() {
    if (fd_ >= 0) ::close(fd_);
    if (context_ != nullptr) ZSTD_freeDCtx(context_);
}

bool CaptureReader::fill(std::size_t bytes) {
    if (position_ > 0 && position_ >= data_.size() / 2) {  // keep the buffer small: drop what was read
        data_.erase(data_.begin(), data_.begin() + static_cast<std::ptrdiff_t>(position_));
        position_ = 0;
    }
    std::vector<char> out(ZSTD_DStreamOutSize());
    while (data_.size() - position_ < bytes) {
        if (in_position_ == in_size_) {
            if (in_eof_) {
                if (data_.size() != position_ || !frame_done_) truncated_ = true;
                return false;
            }
            const ssize_t got = ::read(fd_, in_.data(), in_.size());
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) {
                in_eof_ = true;
                continue;
            }
            in_position_ = 0;
            in_size_ = static_cast<std::size_t>(got);
        }
        ZSTD_inBuffer in{in_.data(), in_size_, in_position_};
        ZSTD_outBuffer output{out.data(), out.size(), 0};
        const std::size_t rc = ZSTD_decompressStream(context_, &output, &in);
        in_position_ = in.pos;
        if (ZSTD_isError(rc)) {
            truncated_ = true;
            return false;
        }
        frame_done_ = rc == 0;
        data_.insert(data_.end(), out.data(), out.data() + output.pos);
    }
    return true;
}

bool CaptureReader::next(CapturedMessage& out) {
    if (!fill(record_header_bytes_)) return false;
    const char* header = data_.data() + position_;
    std::uint32_t length = 0;
    std::memcpy(&length, header + 28, 4);
    if (length > capture_format::capture_message_bytes_max) {
        truncated_ = true;
        return false;
    }
    if (!fill(record_header_bytes_ + length)) return false;
    header = data_.data() + position_;  // fill() may have moved the buffer
    out.meta = MessageMeta{};
    std::memcpy(&out.meta.receive_time_ns, header, 8);
    out.meta.transport = static_cast<Transport>(static_cast<std::uint8_t>(header[8]));
    out.meta.source.family = static_cast<std::uint8_t>(header[9]);
    std::memcpy(&out.meta.source.port, header + 10, 2);
    std::memcpy(out.meta.source.addr, header + 12, 16);
    out.meta.length = length;
    out.bytes = std::string_view(header + record_header_bytes_, length);
    position_ += record_header_bytes_ + length;
    return true;
}

}  // namespace cefd
