// engine/capture/capture.h: capture of raw received messages to zstd files, and their reader.
//
// Capturer: created by Pipeline::build when `capture.dir` is set, one CaptureQueue per lane.
// The lane's worker calls offer() for every message it takes from its ring: one memcpy of the
// meta and bytes into the lane's bounded queue (a ByteRing of `queue_bytes`, allocated at
// start). When the queue is full the message is dropped from the capture only, and counted
// (capture_dropped_total{lane}): the pipeline never waits for the capture. One capture thread
// drains every queue, compresses (zstd level 1) and writes files, rotating at `rotate_bytes`
// and deleting the oldest files past `max_bytes`. Format: capture_format.h.
//
// Threads: offer() on the lane's worker only (single producer per queue); everything else on
// the capture thread, started by start() and joined by stop() (which drains what is queued).
//
// CaptureReader: reads one file record by record (for `cefd-loadgen replay` and tests).
#pragma once

#include <atomic>
#include <cstring>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/config/config_errors.h"
#include "engine/metrics/metrics.h"
#include "engine/queue/byte_ring.h"
#include "engine/record.h"
#include "engine/result.h"

typedef struct ZSTD_CCtx_s ZSTD_CCtx;
typedef struct ZSTD_DCtx_s ZSTD_DCtx;

namespace cefd {

struct CaptureConfig {
    /// Directory for capture files. Empty (the default) turns capture off.
    std::string dir;
    /// All capture files together; past it the oldest are deleted. At least rotate_bytes.
    std::uint64_t max_bytes = 1ULL << 30;
    /// Start a new file after this many compressed bytes (at least 1 MiB).
    std::uint64_t rotate_bytes = 64ULL << 20;
    /// Each lane's queue to the capture thread (a power of two, at least 1 MiB). Full = the
    /// message is left out of the capture and counted.
    std::uint32_t queue_bytes = 8U << 20;

    [[nodiscard]] bool enabled() const noexcept { return !dir.empty(); }
    void validate(ConfigErrors& errors) const;
};

struct CaptureStats {
    Counter captured{0};       // messages written (capture thread)
    Counter bytes_written{0};  // compressed bytes (capture thread)
    Counter files{0};          // files opened
    Counter deleted_files{0};  // files removed for max_bytes
    Counter write_errors{0};   // a write or open that failed (the capture goes on with the next file)
};

class Capturer {
public:
    static Result<std::unique_ptr<Capturer>> open(const CaptureConfig& config, unsigned lanes);
    ~Capturer();
    Capturer(const Capturer&) = delete;
    Capturer& operator=(const Capturer&) = delete;

    /// Lane worker, per message: copies it into the lane's queue, or counts a drop.
    void offer(unsigned lane, const MessageMeta& meta, std::string_view message) noexcept {
        Queue& queue = *queues_[lane];
        if (sizeof meta + message.size() > queue.ring.max_record_bytes()) {  // a frame over queue_bytes / 4
            bump(queue.dropped);
            return;
        }
        const std::span<std::byte> slot = queue.ring.reserve(sizeof meta + message.size());
        if (slot.empty()) {
            bump(queue.dropped);
            return;
        }
        std::memcpy(slot.data(), &meta, sizeof meta);
        std::memcpy(slot.data() + sizeof meta, message.data(), message.size());
        queue.ring.commit(sizeof meta + message.size());
    }

    void start();
    /// Drains the queues, closes the file, joins the thread. The workers must have stopped.
    void stop();
    void register_metrics(MetricsRegistry& metrics);
    [[nodiscard]] const CaptureStats& stats() const noexcept { return stats_; }

private:
    struct Queue {
        explicit Queue(std::size_t bytes) : ring(bytes) {}
        ByteRing ring;
        Counter dropped{0};  // the worker's counter: queue full
    };
    explicit Capturer(const CaptureConfig& config);
    void run(std::stop_token stop);
    /// Moves every queued record into the compressor; returns how many.
    std::size_t drain();
    bool write_record(const MessageMeta& meta, std::string_view message);
    static void encode_header(char* header, const MessageMeta& meta, std::size_t length) noexcept;
    bool flush_pending();
    bool open_file();
    void close_file();
    void enforce_max_bytes();
    bool emit(const void* data, std::size_t bytes, bool end);

    CaptureConfig config_;
    std::vector<std::unique_ptr<Queue>> queues_;
    ZSTD_CCtx* context_ = nullptr;
    int fd_ = -1;
    std::string path_;
    std::uint64_t file_bytes_ = 0;
    std::uint64_t file_number_ = 0;
    std::vector<char> out_;
    std::vector<char> pending_;  // records not yet given to zstd
    std::size_t pending_bytes_ = 0;
    std::deque<std::pair<std::string, std::uint64_t>> files_;  // oldest first: path, bytes
    std::uint64_t total_bytes_ = 0;
    CaptureStats stats_;
    std::jthread thread_;
};

/// One captured message, as read back.
struct CapturedMessage {
    MessageMeta meta;
    std::string_view bytes;  // valid until the next next()
};

class CaptureReader {
public:
    static Result<std::unique_ptr<CaptureReader>> open(const std::string& path);
    ~CaptureReader();
    CaptureReader(const CaptureReader&) = delete;
    CaptureReader& operator=(const CaptureReader&) = delete;

    /// The next record, or false at the end of the file (or of its last complete record).
    bool next(CapturedMessage& out);
    /// The file ended inside a record or frame (cefd was killed while writing it), or is corrupt.
    [[nodiscard]] bool truncated() const noexcept { return truncated_; }

private:
    CaptureReader() = default;
    /// Makes at least `bytes` decompressed bytes available from `position_`; false at the end.
    bool fill(std::size_t bytes);

    int fd_ = -1;
    ZSTD_DCtx* context_ = nullptr;
    std::vector<char> in_;
    std::size_t in_position_ = 0;
    std::size_t in_size_ = 0;
    bool in_eof_ = false;
    bool frame_done_ = false;
    std::vector<char> data_;
    std::size_t position_ = 0;
    bool truncated_ = false;
    std::size_t record_header_bytes_ = 32;
};

}  // namespace cefd
