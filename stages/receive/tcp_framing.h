// stages/receive/tcp_framing.h: RFC 6587 framing of a syslog TCP stream. The one place that
// defines how cefd splits a TCP byte stream into messages.
//
// Each frame decides its own framing by its first bytes (senders may mix them):
//   octet counting  MSG-LEN SP MSG     MSG-LEN is 1-9 digits, the first not '0'; exactly
//                                      MSG-LEN bytes of MSG follow. One trailing LF (and CR)
//                                      inside MSG is removed.
//   non-transparent MSG LF             anything else: MSG runs to the next LF; a CR before the
//                                      LF is removed (CRLF senders).
// LF and CR bytes between frames are skipped (empty lines are not messages).
//
// Limits and what happens at them (the caller counts each case):
//   - A frame longer than `frame_bytes_max` is delivered cut to that many bytes with
//     Cut::oversize; the rest of it is skipped (by count, or up to the next LF), so the stream
//     stays in sync, and take_skipped() reports those bytes (cut_bytes). A count above the
//     limit that is not the sender's real frame length (a corrupt stream) therefore shows as
//     cut bytes far above the oversize frames' share.
//   - A count over `frame_bytes_ceiling` (16 MiB, the largest receive.max_frame_bytes; so
//     every run of 9 to 19 digits followed by SP) cannot be a count we accept: the stream is
//     out of sync. The framer resynchronises on the next LF: the bytes from the digits through
//     that LF are skipped (not delivered), and take_skipped() reports one bad frame and the
//     bytes skipped, so the frames behind it still arrive. A run of 20 or more digits is not
//     a count at all: it starts a non-transparent frame.
//   - At end of stream, a last frame without its LF is delivered as is; an octet-counted frame
//     shorter than its count is delivered with Cut::partial_at_eof.
//
// The framer is a pure function over a byte view plus a little state for skipping; it never
// allocates. Frames are views into the caller's buffer, valid until the caller moves it.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>

namespace cefd::receive {

enum class Cut : std::uint8_t { none, oversize, partial_at_eof };
enum class FrameStatus : std::uint8_t {
    need_more,  // every complete frame was delivered; `pending` holds a partial one (or nothing)
    blocked,    // deliver() refused a frame (ring full); it stays at the front of `pending`
};

/// Out-of-sync stretches the framer skipped since the last take_skipped().
struct Skipped {
    std::uint64_t frames = 0;  // bad octet counts (over frame_bytes_ceiling)
    std::uint64_t bytes = 0;   // bytes skipped for them: the digits through the next LF
    std::uint64_t cut_bytes = 0;  // the rest of frames cut at frame_bytes_max (Cut::oversize)
    std::uint64_t separators = 0;  // LF and CR between frames (keep-alives): not messages
};

class TcpFramer {
public:
    /// The largest frame_bytes_max (receive.max_frame_bytes is checked against it). A larger
    /// octet count is garbage, not a frame to cut: trusting "999999999 " skipped ~1 GB of the
    /// frames behind it, counted nowhere (found in review).
    static constexpr std::uint32_t frame_bytes_ceiling = std::uint32_t{16} << 20;

    explicit TcpFramer(std::uint32_t frame_bytes_max) noexcept : max_(frame_bytes_max) {}

    /// Delivers every complete frame at the front of `pending` and removes it (and skipped
    /// bytes) from the view. `deliver(std::string_view frame, Cut cut) -> bool` returns false
    /// when it cannot take the frame now. `eof`: no more bytes will come.
    template <class Deliver>
    FrameStatus drain(std::string_view& pending, bool eof, Deliver&& deliver) {
        // Bounded: every turn consumes bytes or returns.
        for (;;) {
            if (skip_bytes_ != 0) {
                const std::size_t n = pending.size() < skip_bytes_ ? pending.size() : skip_bytes_;
                pending.remove_prefix(n);
                skip_bytes_ -= n;
                skipped_.cut_bytes += n;
                if (skip_bytes_ != 0) return FrameStatus::need_more;
            }
            if (skip_to_newline_) {
                const void* lf = std::memchr(pending.data(), '\n', pending.size());
                const std::size_t n = lf == nullptr ? pending.size() : offset_of(pending, lf) + 1;
                (resyncing_ ? skipped_.bytes : skipped_.cut_bytes) += n;
                pending.remove_prefix(n);
                if (lf == nullptr) return FrameStatus::need_more;
                skip_to_newline_ = false;
                resyncing_ = false;
            }
            while (!pending.empty() && (pending.front() == '\n' || pending.front() == '\r')) {
                pending.remove_prefix(1);
                ++skipped_.separators;
            }
            if (pending.empty()) return FrameStatus::need_more;

            Step step;
            if (pending.front() >= '1' && pending.front() <= '9') {
                std::size_t digits = 1;
                while (digits < pending.size() && digits < scan_digits_max &&
                       is_digit(pending[digits]))
                    ++digits;
                if (digits == pending.size() && digits < scan_digits_max && !eof)
                    return FrameStatus::need_more;  // the count may go on in the next read
                // A run of scan_digits_max digits is never a count, whether or not the SP after
                // it is in this read, so the same bytes frame the same across read boundaries.
                if (digits < scan_digits_max && digits < pending.size() && pending[digits] == ' ') {
                    const std::uint64_t count = count_of(pending, digits);  // < 20 digits: no overflow
                    if (count > frame_bytes_ceiling) {
                        // Out of sync: resynchronise on the next LF (the skip at the loop top).
                        ++skipped_.frames;
                        skip_to_newline_ = true;
                        resyncing_ = true;
                        continue;
                    }
                    step = octet_counted(pending, digits, count, eof, deliver);
                } else {
                    // Digits followed by anything else: a non-transparent frame (a timestamp).
                    step = newline_terminated(pending, eof, deliver);
                }
            } else {
                step = newline_terminated(pending, eof, deliver);
            }
            switch (step) {
                case Step::consumed: continue;
                case Step::incomplete: return FrameStatus::need_more;
                case Step::blocked: return FrameStatus::blocked;
            }
        }
    }

    /// The smallest read buffer that always makes progress: a whole cut frame, its count prefix
    /// and a CR fit.
    static constexpr std::size_t buffer_bytes_min(std::uint32_t frame_bytes_max) noexcept {
        return std::size_t{frame_bytes_max} + scan_digits_max + 8;
    }

    /// True while the framer is skipping the rest of a cut frame or a bad one.
    [[nodiscard]] bool skipping() const noexcept { return skip_bytes_ != 0 || skip_to_newline_; }

    /// What was skipped to resynchronise since the last call; resets the tally.
    Skipped take_skipped() noexcept { return std::exchange(skipped_, Skipped{}); }

private:
    enum class Step : std::uint8_t { consumed, incomplete, blocked };
    static constexpr std::size_t scan_digits_max = 20;  // a longer digit run is not a count
    static std::uint64_t count_of(std::string_view pending, std::size_t digits) noexcept {
        std::uint64_t count = 0;
        for (std::size_t i = 0; i < digits; ++i)
            count = count * 10 + static_cast<std::uint64_t>(pending[i] - '0');
        return count;
    }
    static std::size_t offset_of(std::string_view view, const void* p) noexcept {
        return static_cast<std::size_t>(static_cast<const char*>(p) - view.data());
    }
    static constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

    static std::string_view strip_line_end(std::string_view frame) noexcept {
        if (!frame.empty() && frame.back() == '\n') frame.remove_suffix(1);
        if (!frame.empty() && frame.back() == '\r') frame.remove_suffix(1);
        return frame;
    }

    // `incomplete` leaves `pending` untouched; `consumed` delivered the frame and removed it.
    template <class Deliver>
    Step octet_counted(std::string_view& pending, std::size_t digits, std::uint64_t count, bool eof,
                       Deliver& deliver) {
        const std::string_view body = pending.substr(digits + 1);
        if (count <= max_) {
            if (body.size() < count) {
                if (!eof) return Step::incomplete;
                if (!deliver(strip_line_end(body), Cut::partial_at_eof)) return Step::blocked;
                pending.remove_prefix(pending.size());
                return Step::consumed;
            }
            if (!deliver(strip_line_end(body.substr(0, count)), Cut::none)) return Step::blocked;
            pending.remove_prefix(digits + 1 + count);
            return Step::consumed;
        }
        if (body.size() < max_) {
            if (!eof) return Step::incomplete;
            if (!deliver(body, Cut::partial_at_eof)) return Step::blocked;
            pending.remove_prefix(pending.size());
            return Step::consumed;
        }
        if (!deliver(body.substr(0, max_), Cut::oversize)) return Step::blocked;
        pending.remove_prefix(digits + 1 + max_);
        skip_bytes_ = count - max_;
        return Step::consumed;
    }

    template <class Deliver>
    Step newline_terminated(std::string_view& pending, bool eof, Deliver& deliver) {
        const void* lf = std::memchr(pending.data(), '\n', pending.size());
        if (lf == nullptr) {
            // + 1: a frame of exactly max_ bytes may be waiting for the LF after its CR.
            if (pending.size() > std::size_t{max_} + 1) {
                if (!deliver(pending.substr(0, max_), Cut::oversize)) return Step::blocked;
                pending.remove_prefix(max_);
                skip_to_newline_ = true;
                return Step::consumed;
            }
            if (!eof) return Step::incomplete;
            // At end of stream the CR allowance above no longer applies: max_ + 1 bytes are cut.
            std::string_view frame = strip_line_end(pending);
            const bool cut = frame.size() > max_;
            if (cut) frame = frame.substr(0, max_);
            if (!deliver(frame, cut ? Cut::oversize : Cut::none)) return Step::blocked;
            if (cut) skipped_.cut_bytes += pending.size() - max_;
            pending.remove_prefix(pending.size());
            return Step::consumed;
        }
        const std::size_t end = offset_of(pending, lf);
        std::string_view frame = pending.substr(0, end);
        if (!frame.empty() && frame.back() == '\r') frame.remove_suffix(1);
        const bool cut = frame.size() > max_;
        if (cut) frame = frame.substr(0, max_);
        if (!deliver(frame, cut ? Cut::oversize : Cut::none)) return Step::blocked;
        if (cut) skipped_.cut_bytes += end + 1 - max_;  // the rest, CR and LF included, as when skipped
        pending.remove_prefix(end + 1);
        return Step::consumed;
    }

    std::uint32_t max_;
    std::uint64_t skip_bytes_ = 0;
    bool skip_to_newline_ = false;
    bool resyncing_ = false;  // the newline skip is for a bad count: its bytes are tallied
    Skipped skipped_;
};

}  // namespace cefd::receive
