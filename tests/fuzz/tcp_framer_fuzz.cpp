// Fuzz target: the RFC 6587 TCP framer (stages/receive/tcp_framing.h), header only.
//
// The same stream is framed twice: in one piece with eof, and the way a receiver sees it, in
// reads of 1 to 64 bytes into a buffer of buffer_bytes_min() bytes, with deliver() refusing some
// frames (ring full). Both must give the same frames and skip the same bad counts and bytes;
// every frame must fit frame_bytes_max; the chunked reader must never stall. Each drain() sees an
// exact-size heap copy of the pending bytes, so ASan catches a read past them.
//
// Input: byte 0 picks frame_bytes_max (1-64, or 512 with the top bit), byte 1 seeds the read
// sizes and refusals, the rest is the stream.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "stages/receive/tcp_framing.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using cefd::receive::Cut;
using cefd::receive::FrameStatus;
using cefd::receive::TcpFramer;

struct Frame {
    std::string bytes;
    Cut cut;
    bool operator==(const Frame&) const = default;
};

struct Outcome {
    std::vector<Frame> frames;
    cefd::receive::Skipped skipped;
};

Outcome frame_in_one_piece(std::string_view stream, std::uint32_t max) {
    Outcome out;
    TcpFramer framer(max);
    const std::unique_ptr<char[]> copy(new char[stream.size() + 1]);
    std::memcpy(copy.get(), stream.data(), stream.size());
    std::string_view pending(copy.get(), stream.size());
    const FrameStatus status = framer.drain(pending, true, [&](std::string_view frame, Cut cut) {
        out.frames.push_back({std::string(frame), cut});
        return true;
    });
    CEFD_FUZZ_CHECK(status == FrameStatus::need_more && pending.empty(), stream);
    out.skipped = framer.take_skipped();
    return out;
}

Outcome frame_in_reads(std::string_view stream, std::uint32_t max, std::uint32_t seed) {
    Outcome out;
    TcpFramer framer(max);
    const std::size_t capacity = TcpFramer::buffer_bytes_min(max);
    std::string buffer;
    std::size_t fed = 0;
    std::uint32_t random = seed * 2654435761U + 1;
    const auto next_random = [&random] {
        random = random * 1103515245U + 12345U;
        return random >> 16;
    };
    // Bounded: every turn reads bytes, consumes bytes, or ends (checked below).
    for (std::size_t turn = 0; turn < 4 * stream.size() + 64; ++turn) {
        const std::size_t room = capacity - buffer.size();
        const std::size_t want = 1 + std::size_t{next_random() % 64};
        const std::size_t n = std::min({want, room, stream.size() - fed});
        buffer.append(stream.substr(fed, n));
        fed += n;
        const bool eof = fed == stream.size();

        const std::size_t size = buffer.size();
        const std::unique_ptr<char[]> copy(new char[size + 1]);
        std::memcpy(copy.get(), buffer.data(), size);
        std::string_view pending(copy.get(), size);
        const bool refuse_one = next_random() % 4 == 0;
        bool refused = false;
        const FrameStatus status = framer.drain(pending, eof, [&](std::string_view frame, Cut cut) {
            CEFD_FUZZ_CHECK(frame.size() <= max, stream);
            CEFD_FUZZ_CHECK(cefd::fuzz::inside(frame, {copy.get(), size}), stream);
            if (refuse_one && !refused) {
                refused = true;
                return false;
            }
            out.frames.push_back({std::string(frame), cut});
            return true;
        });
        CEFD_FUZZ_CHECK(cefd::fuzz::inside(pending, {copy.get(), size}), stream);
        const std::size_t consumed = size - pending.size();
        buffer.erase(0, consumed);
        if (status == FrameStatus::blocked) {
            CEFD_FUZZ_CHECK(refused, stream);
            continue;
        }
        if (eof) {
            CEFD_FUZZ_CHECK(buffer.empty(), stream);  // at eof everything is delivered or skipped
            out.skipped = framer.take_skipped();
            return out;
        }
        // need_more with a full buffer and nothing consumed: the receiver could never go on.
        CEFD_FUZZ_CHECK(!(n == 0 && consumed == 0 && buffer.size() == capacity), stream);
    }
    cefd::fuzz::fail("chunked framing did not finish", stream);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::uint32_t max = (data[0] & 0x80U) != 0 ? 512U : 1U + data[0] % 64U;
    const std::uint32_t seed = data[1];
    const std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);

    const Outcome whole = frame_in_one_piece(stream, max);
    for (const Frame& frame : whole.frames) CEFD_FUZZ_CHECK(frame.bytes.size() <= max, stream);
    const Outcome reads = frame_in_reads(stream, max, seed);
    CEFD_FUZZ_CHECK(whole.skipped.frames == reads.skipped.frames, stream);
    CEFD_FUZZ_CHECK(whole.skipped.bytes == reads.skipped.bytes, stream);
    CEFD_FUZZ_CHECK(whole.frames == reads.frames, stream);
    return 0;
}
