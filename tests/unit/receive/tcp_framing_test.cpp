// Unit tests of the RFC 6587 framer (stages/receive/tcp_framing.h): pure, no sockets.
#include "stages/receive/tcp_framing.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cefd::receive {
namespace {

struct Frame {
    std::string bytes;
    Cut cut;
    bool operator==(const Frame&) const = default;
    friend void PrintTo(const Frame& frame, std::ostream* out) {
        *out << '"' << frame.bytes << "\" cut=" << static_cast<int>(frame.cut);
    }
};

// Feeds `chunks` the way a connection does: append to a buffer, drain, keep the rest.
struct Harness {
    explicit Harness(std::uint32_t max) : framer(max) {}
    TcpFramer framer;
    std::string buffer;
    std::vector<Frame> frames;
    std::size_t refuse_after = SIZE_MAX;  // deliver() refuses once this many frames are in

    FrameStatus feed(std::string_view chunk, bool eof = false) {
        buffer.append(chunk);
        std::string_view pending(buffer);
        const FrameStatus status = framer.drain(pending, eof, [&](std::string_view f, Cut cut) {
            if (frames.size() >= refuse_after) return false;
            frames.push_back({std::string(f), cut});
            return true;
        });
        buffer.erase(0, buffer.size() - pending.size());
        return status;
    }
};

const std::string mixed_stream =
    "<13>1 2024-01-01T00:00:00Z host app - - - newline one\n"
    "26 <13>1 octet counted frame\n"          // the count includes the LF, which is removed
    "<14>CRLF frame\r\n"
    "\n"                                      // an empty line between frames is skipped
    "15 no newline here"
    "2024-05-01 starts with digits\n"
    "7 CEF:0|a";

const std::vector<Frame> mixed_frames = {
    {"<13>1 2024-01-01T00:00:00Z host app - - - newline one", Cut::none},
    {"<13>1 octet counted frame", Cut::none},
    {"<14>CRLF frame", Cut::none},
    {"no newline here", Cut::none},
    {"2024-05-01 starts with digits", Cut::none},
    {"CEF:0|a", Cut::none},
};

TEST(TcpFraming, MixedFramesInOneRead) {
    Harness h(1024);
    EXPECT_EQ(h.feed(mixed_stream), FrameStatus::need_more);
    EXPECT_EQ(h.frames, mixed_frames);
    EXPECT_TRUE(h.buffer.empty());
}

TEST(TcpFraming, SplitsAtEveryBytePosition) {
    for (std::size_t split = 0; split <= mixed_stream.size(); ++split) {
        Harness h(1024);
        EXPECT_EQ(h.feed(std::string_view(mixed_stream).substr(0, split)), FrameStatus::need_more);
        EXPECT_EQ(h.feed(std::string_view(mixed_stream).substr(split)), FrameStatus::need_more);
        EXPECT_EQ(h.frames, mixed_frames) << "split at " << split;
    }
}

TEST(TcpFraming, OneByteAtATime) {
    Harness h(1024);
    for (const char c : mixed_stream) EXPECT_EQ(h.feed(std::string_view(&c, 1)), FrameStatus::need_more);
    EXPECT_EQ(h.frames, mixed_frames);
}

TEST(TcpFraming, LastFrameWithoutNewlineIsDeliveredAtEof) {
    Harness h(1024);
    h.feed("first\nsecond without newline");
    ASSERT_EQ(h.frames.size(), 1U);
    h.feed("", true);
    ASSERT_EQ(h.frames.size(), 2U);
    EXPECT_EQ(h.frames[1], (Frame{"second without newline", Cut::none}));
}

TEST(TcpFraming, ShortOctetFrameAtEofIsFlagged) {
    Harness h(1024);
    h.feed("20 only ten b");
    EXPECT_TRUE(h.frames.empty());
    h.feed("", true);
    ASSERT_EQ(h.frames.size(), 1U);
    EXPECT_EQ(h.frames[0], (Frame{"only ten b", Cut::partial_at_eof}));
}

// Bare LFs between frames are keep-alives: reported, so the connection counts them as activity
// (a keep-alive sender was idle-closed otherwise; found in review).
TEST(TcpFraming, ReportsTheSeparatorsItSkips) {
    Harness h(100);
    h.feed("\n\r\n\n");
    EXPECT_TRUE(h.frames.empty());
    EXPECT_EQ(h.framer.take_skipped().separators, 4U);
    h.feed("a\n");
    EXPECT_EQ(h.framer.take_skipped().separators, 0U);  // the LF that ends a frame is not one
}

TEST(TcpFraming, OversizeNewlineFrameIsCutAndStreamStaysInSync) {
    Harness h(100);
    const std::string big(250, 'a');
    for (std::size_t i = 0; i < big.size(); i += 37) h.feed(std::string_view(big).substr(i, 37));
    h.feed("\nnext\n");
    ASSERT_EQ(h.frames.size(), 2U);
    EXPECT_EQ(h.frames[0], (Frame{std::string(100, 'a'), Cut::oversize}));
    EXPECT_EQ(h.frames[1], (Frame{"next", Cut::none}));
    // The 150 bytes past the cut and the LF that ended them: dropped, and said so. They were
    // counted nowhere (found in review).
    const Skipped skipped = h.framer.take_skipped();
    EXPECT_EQ(skipped.cut_bytes, 151U);
    EXPECT_EQ(skipped.bytes, 0U);
    // The same frame with its LF in the same read is cut without a skip: counted the same. So is
    // a frame cut at end of stream. (Missed at first: found in review.)
    Harness whole(100);
    whole.feed(big + "\r\nnext\n");
    ASSERT_EQ(whole.frames.size(), 2U);
    EXPECT_EQ(whole.framer.take_skipped().cut_bytes, 152U);
    Harness at_eof(100);
    at_eof.feed(std::string(130, 'c'), true);
    ASSERT_EQ(at_eof.frames.size(), 1U);
    EXPECT_EQ(at_eof.frames[0], (Frame{std::string(100, 'c'), Cut::oversize}));
    EXPECT_EQ(at_eof.framer.take_skipped().cut_bytes, 30U);
}

TEST(TcpFraming, OversizeOctetFrameIsCutAndRestSkipped) {
    Harness h(100);
    const std::string body(300, 'b');
    h.feed("300 " + body.substr(0, 150));
    h.feed(body.substr(150) + "4 next");
    ASSERT_EQ(h.frames.size(), 2U);
    EXPECT_EQ(h.frames[0], (Frame{std::string(100, 'b'), Cut::oversize}));
    EXPECT_EQ(h.frames[1], (Frame{"next", Cut::none}));
    // A count above the limit swallows what it covers, frames behind it included if the count
    // was wrong: the 200 bytes skipped by count are reported (found in review).
    EXPECT_EQ(h.framer.take_skipped().cut_bytes, 200U);
}

TEST(TcpFraming, FrameOfExactlyTheLimitIsNotCut) {
    Harness h(100);
    const std::string exact(100, 'c');
    h.feed(exact + "\r");
    h.feed("\n100 " + exact);
    ASSERT_EQ(h.frames.size(), 2U);
    EXPECT_EQ(h.frames[0], (Frame{exact, Cut::none}));
    EXPECT_EQ(h.frames[1], (Frame{exact, Cut::none}));
}

TEST(TcpFraming, CountOfTenDigitsResynchronisesOnTheNextLf) {
    Harness h(1024);
    EXPECT_EQ(h.feed("ok\n1234567890 x"), FrameStatus::need_more);
    EXPECT_EQ(h.feed("yz\nafter\n"), FrameStatus::need_more);
    ASSERT_EQ(h.frames.size(), 2U);
    EXPECT_EQ(h.frames[0].bytes, "ok");
    EXPECT_EQ(h.frames[1].bytes, "after");
    const Skipped skipped = h.framer.take_skipped();
    EXPECT_EQ(skipped.frames, 1U);
    EXPECT_EQ(skipped.bytes, std::string_view("1234567890 xyz\n").size());
    EXPECT_EQ(h.framer.take_skipped().frames, 0U);  // taken: the tally starts again
}

TEST(TcpFraming, NineteenDigitCountBehindValidFramesLosesOnlyItsOwnLine) {
    Harness h(1024);
    h.feed("1234567890123456789 bad\n5 first6 second\n", true);
    ASSERT_EQ(h.frames.size(), 2U);
    EXPECT_EQ(h.frames[0].bytes, "first");
    EXPECT_EQ(h.frames[1].bytes, "second");
    EXPECT_EQ(h.framer.take_skipped().frames, 1U);
}

// A 9-digit count over the 16 MiB that any config allows is garbage: it used to cut one 64 KiB
// frame out of the messages behind it and then skip ~1 GB of the stream, counted nowhere.
TEST(TcpFraming, NineDigitCountOverTheLargestFrameResynchronisesOnTheNextLf) {
    Harness h(65'536);
    std::string stream = "999999999 <13>garbage count\n";
    for (int i = 0; i < 100; ++i) stream += "<13>host CEF:0|V|P|1|s|n|5|cnt=" + std::to_string(i) + "\n";
    h.feed(stream, true);
    ASSERT_EQ(h.frames.size(), 100U);
    for (int i = 0; i < 100; ++i) {
        EXPECT_EQ(h.frames[i].bytes, "<13>host CEF:0|V|P|1|s|n|5|cnt=" + std::to_string(i));
        EXPECT_EQ(h.frames[i].cut, Cut::none);
    }
    const Skipped skipped = h.framer.take_skipped();
    EXPECT_EQ(skipped.frames, 1U);
    EXPECT_EQ(skipped.bytes, std::string_view("999999999 <13>garbage count\n").size());
}

// The largest count a config can accept is still a count: cut to the limit, the rest skipped.
TEST(TcpFraming, CountOfSixteenMiBIsStillACount) {
    Harness h(1024);
    std::string stream = std::to_string(TcpFramer::frame_bytes_ceiling) + " ";
    stream.append(2048, 'x');
    h.feed(stream);
    ASSERT_EQ(h.frames.size(), 1U);
    EXPECT_EQ(h.frames[0].cut, Cut::oversize);
    EXPECT_EQ(h.framer.take_skipped().frames, 0U);
    EXPECT_TRUE(h.framer.skipping());
}

TEST(TcpFraming, RefusedFrameStaysAtTheFront) {
    Harness h(1024);
    h.refuse_after = 1;
    EXPECT_EQ(h.feed("a\nb\nc\n"), FrameStatus::blocked);
    EXPECT_EQ(h.frames.size(), 1U);
    EXPECT_EQ(h.buffer, "b\nc\n");
    h.refuse_after = SIZE_MAX;
    EXPECT_EQ(h.feed(""), FrameStatus::need_more);
    ASSERT_EQ(h.frames.size(), 3U);
    EXPECT_EQ(h.frames[2].bytes, "c");
}

TEST(TcpFraming, BinaryGarbageBecomesNewlineFrames) {
    Harness h(1024);
    const std::string garbage("\x01\x02\xff\x00zz\n\x7f", 8);
    h.feed(garbage, true);
    ASSERT_EQ(h.frames.size(), 2U);
    EXPECT_EQ(h.frames[0].bytes, std::string("\x01\x02\xff\x00zz", 6));
    EXPECT_EQ(h.frames[1].bytes, "\x7f");
}

// Found by tests/fuzz/tcp_framer_fuzz.cpp (finding 2 in tests/fuzz/README.md).
TEST(TcpFraming, LastFrameOneByteOverTheLimitIsCutAtEof) {
    Harness h(8);
    EXPECT_EQ(h.feed("123456789", true), FrameStatus::need_more);
    EXPECT_EQ(h.frames, (std::vector<Frame>{{"12345678", Cut::oversize}}));
}

// Found by tests/fuzz/tcp_framer_fuzz.cpp (finding 3): the same bytes frame the same in any reads.
TEST(TcpFraming, TwentyDigitsThenSpaceFrameTheSameInOneReadOrTwo) {
    const std::string digits(20, '5');
    Harness whole(8);
    const FrameStatus one = whole.feed(digits + " x\n");
    Harness split(8);
    EXPECT_EQ(split.feed(digits), FrameStatus::need_more);
    EXPECT_EQ(split.feed(" x\n"), one);
    EXPECT_EQ(split.frames, whole.frames);
}

}  // namespace
}  // namespace cefd::receive
