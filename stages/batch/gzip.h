// stages/batch/gzip.h: one-shot gzip (RFC 1952) of a whole batch, with ISA-L igzip or libdeflate.
//
// A GzipCompressor owns its compressor state and its output buffer, both sized at construction
// for inputs up to `max_input_bytes`; compress() never allocates. Not thread-safe: one per
// Batcher (so one per lane). Both back ends write a standard gzip member that any inflater
// (zlib, libdeflate, the Azure gateway) reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

struct libdeflate_compressor;

namespace cefd {

class GzipCompressor {
public:
    enum class Kind : std::uint8_t { igzip, libdeflate };

    /// True when this build links ISA-L.
    static bool igzip_available() noexcept;

    /// `level` is the gzip level 0-9; igzip maps it onto its own levels 0-3 (BatchConfig).
    GzipCompressor(Kind kind, std::uint32_t level, std::size_t max_input_bytes);
    ~GzipCompressor();
    GzipCompressor(const GzipCompressor&) = delete;
    GzipCompressor& operator=(const GzipCompressor&) = delete;

    /// Compresses `input` (at most max_input_bytes) into the internal buffer and returns a view
    /// of it, valid until the next call. Empty on failure (a bug: the buffer is sized for the
    /// worst case).
    std::span<const std::byte> compress(std::span<const char> input) noexcept;

    [[nodiscard]] Kind kind() const noexcept { return kind_; }
    [[nodiscard]] const char* name() const noexcept { return kind_ == Kind::igzip ? "igzip" : "libdeflate"; }

private:
    Kind kind_;
    std::uint32_t level_;
    std::size_t max_input_bytes_;
    std::size_t output_capacity_ = 0;
    std::unique_ptr<std::byte[]> output_;
    std::unique_ptr<std::uint8_t[]> igzip_level_buf_;
    std::uint32_t igzip_level_ = 0;
    std::uint32_t igzip_level_buf_size_ = 0;
    libdeflate_compressor* deflate_ = nullptr;
};

}  // namespace cefd
