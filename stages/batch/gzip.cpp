#include "stages/batch/gzip.h"

#include <libdeflate.h>

#include <cstring>

#include "engine/log.h"

#if CEFD_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

namespace cefd {

bool GzipCompressor::igzip_available() noexcept { return CEFD_HAVE_ISAL != 0; }

GzipCompressor::GzipCompressor(Kind kind, std::uint32_t level, std::size_t max_input_bytes)
    : kind_(kind), level_(level), max_input_bytes_(max_input_bytes) {
    if (!igzip_available()) kind_ = Kind::libdeflate;
    // Both back ends are given libdeflate's worst-case bound plus room for a gzip header that
    // igzip writes on its own (it is a few bytes; 4 KiB of slack costs nothing per lane).
    // libdeflate's level 0 stores the input uncompressed: its fastest compressing level is 1.
    deflate_ = libdeflate_alloc_compressor(static_cast<int>(level_ < 1 ? 1 : level_ > 12 ? 12 : level_));
    CEFD_ASSERT(deflate_ != nullptr);
    output_capacity_ = libdeflate_gzip_compress_bound(deflate_, max_input_bytes_) + 4096;
    output_ = std::make_unique<std::byte[]>(output_capacity_);
#if CEFD_HAVE_ISAL
    if (kind_ == Kind::igzip) {
        // igzip level 0 is LZ77 with one static Huffman pass and needs no level buffer; 1 adds a
        // histogram pass and a dynamic Huffman table (about 11 % smaller output on our rows);
        // 2 and 3 trade speed for ratio like gzip -4..-9 (bench/README.md, "gzip level").
        igzip_level_ = level_ == 0 ? 0 : level_ == 1 ? 1 : level_ <= 5 ? 2 : 3;
        igzip_level_buf_size_ = igzip_level_ == 0   ? 0
                                : igzip_level_ == 1 ? ISAL_DEF_LVL1_DEFAULT
                                : igzip_level_ == 2 ? ISAL_DEF_LVL2_DEFAULT
                                                    : ISAL_DEF_LVL3_DEFAULT;
        if (igzip_level_buf_size_ != 0)
            igzip_level_buf_ = std::make_unique<std::uint8_t[]>(igzip_level_buf_size_);
    }
#endif
}

GzipCompressor::~GzipCompressor() {
    if (deflate_ != nullptr) libdeflate_free_compressor(deflate_);
}

std::span<const std::byte> GzipCompressor::compress(std::span<const char> input) noexcept {
    CEFD_ASSERT(input.size() <= max_input_bytes_);
#if CEFD_HAVE_ISAL
    if (kind_ == Kind::igzip) {
        isal_zstream stream;
        isal_deflate_stateless_init(&stream);
        stream.gzip_flag = IGZIP_GZIP;
        stream.level = igzip_level_;
        stream.level_buf = igzip_level_buf_.get();
        stream.level_buf_size = igzip_level_buf_size_;
        stream.end_of_stream = 1;
        stream.flush = NO_FLUSH;
        // ISA-L's API takes non-const input; it does not write to it.
        stream.next_in = reinterpret_cast<std::uint8_t*>(const_cast<char*>(input.data()));
        stream.avail_in = static_cast<std::uint32_t>(input.size());
        stream.next_out = reinterpret_cast<std::uint8_t*>(output_.get());
        stream.avail_out = static_cast<std::uint32_t>(output_capacity_);
        const int rc = isal_deflate_stateless(&stream);
        if (rc == COMP_OK) return {output_.get(), stream.total_out};
        // STATELESS_OVERFLOW cannot happen with a worst-case-sized buffer; anything else is a
        // bug in how the stream was set up. Fall through to libdeflate so no batch is lost.
        CEFD_LOG_EVERY(60, error, "batch: igzip failed (rc %d); using libdeflate for this batch", rc);
    }
#endif
    const std::size_t n = libdeflate_gzip_compress(deflate_, input.data(), input.size(), output_.get(),
                                                   output_capacity_);
    if (n == 0) return {};
    return {output_.get(), n};
}

}  // namespace cefd
