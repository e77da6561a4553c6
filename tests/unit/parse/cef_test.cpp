#include "stages/parse/cef.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace cefd {
namespace {

std::vector<std::pair<std::string, std::string>> pairs_of(std::string_view extension) {
    std::vector<std::pair<std::string, std::string>> out;
    CefExtensionReader reader(extension);
    CefPair pair;
    while (reader.next(pair)) {
        std::string value(pair.value.size(), '\0');
        value.resize(unescape_cef_value(pair.value, value.data()));
        out.emplace_back(std::string(pair.key), value);
    }
    return out;
}

using Pairs = std::vector<std::pair<std::string, std::string>>;

TEST(CefHeader, ReadsSevenFieldsAndExtension) {
    CefHeader h;
    ASSERT_EQ(parse_cef_header("CEF:0|Darktrace|Enterprise Immune System|6.1|26|Name here|7|a=b", h), CefStatus::ok);
    EXPECT_EQ(h.version, 0);
    EXPECT_EQ(h.vendor, "Darktrace");
    EXPECT_EQ(h.product, "Enterprise Immune System");
    EXPECT_EQ(h.device_version, "6.1");
    EXPECT_EQ(h.signature_id, "26");
    EXPECT_EQ(h.name, "Name here");
    EXPECT_EQ(h.severity, "7");
    EXPECT_EQ(h.extension, "a=b");
}

TEST(CefHeader, AcceptsVersionOneAndLoggerSpace) {
    CefHeader h;
    ASSERT_EQ(parse_cef_header("CEF:1|v|p|1|2|n|3|", h), CefStatus::ok);
    EXPECT_EQ(h.version, 1);
    ASSERT_EQ(parse_cef_header("CEF: 0|v|p|1|2|n|3|", h), CefStatus::ok);
    ASSERT_EQ(parse_cef_header("0|v|p|1|2|n|3|", h), CefStatus::ok);  // after a "CEF" tag
    EXPECT_EQ(h.vendor, "v");
}

TEST(CefHeader, RejectsUnknownVersionAndShortHeader) {
    CefHeader h;
    EXPECT_EQ(parse_cef_header("CEF:2|v|p|1|2|n|3|", h), CefStatus::bad_header);
    EXPECT_EQ(parse_cef_header("CEF:x|v|p|1|2|n|3|", h), CefStatus::bad_header);
    EXPECT_EQ(parse_cef_header("CEF:0|v|p|1|2", h), CefStatus::bad_header);
    // Microsoft's six-field mock line: the extension slides into Severity.
    EXPECT_EQ(parse_cef_header("CEF:0|Mock-test|MOCK|common=event-format-test|end|TRAFFIC|rt=1 deviceDirection=1", h),
              CefStatus::bad_header);
}

TEST(CefHeader, AcceptsMissingPipeAfterSeverityWhenNothingFollows) {
    CefHeader h;
    ASSERT_EQ(parse_cef_header("CEF:0|v|p|1|2|n|High", h), CefStatus::ok);
    EXPECT_EQ(h.severity, "High");
    EXPECT_EQ(h.extension, "");
}

TEST(CefHeader, KeepsEmptyFields) {
    CefHeader h;
    ASSERT_EQ(parse_cef_header("CEF:0|F-Secure|EDR||evt|Name|4|a=b", h), CefStatus::ok);
    EXPECT_EQ(h.device_version, "");
    EXPECT_EQ(h.signature_id, "evt");
}

TEST(CefHeader, KeepsEscapedPipeInHeaderField) {
    CefHeader h;
    ASSERT_EQ(parse_cef_header(R"(CEF:0|v|p|1|2|RDP \| via C:\\Tools\\rdp.exe|3|a=b)", h), CefStatus::ok);
    std::string name(h.name.size(), '\0');
    name.resize(unescape_cef_header(h.name, name.data()));
    EXPECT_EQ(name, R"(RDP | via C:\Tools\rdp.exe)");
    EXPECT_EQ(h.severity, "3");
}

TEST(CefHeader, KeepsALoneBackslashAsSent) {
    std::string out(8, '\0');
    out.resize(unescape_cef_header(R"(a\b\)", out.data()));
    EXPECT_EQ(out, R"(a\b\)");
}

// The reader flags a value's backslash from the same scan that finds the next key; the flag
// must be has_backslash(value) for every value: at every offset around the 16-byte steps, in
// values with '=' inside, in the last value, and in padded ones.
TEST(CefExtension, FlagsEveryValueThatHoldsABackslash) {
    std::vector<std::string> extensions;
    for (std::size_t length = 0; length < 40; ++length) {
        for (std::size_t at = 0; at <= length; ++at) {
            std::string value(length, 'v');
            if (at < length) value[at] = '\\';
            extensions.push_back("a=" + value + " b=" + value);            // one in the middle, one last
            extensions.push_back("k=" + value + "=x?y=z  next=1");       // '=' inside the value, padding
            extensions.push_back("k=" + value + " url=a\\=b end=" + value);  // an escaped '='
        }
    }
    int checked = 0;
    for (const std::string& extension : extensions) {
        CefExtensionReader reader(extension);
        CefPair pair;
        while (reader.next(pair)) {
            EXPECT_EQ(pair.value_has_backslash, has_backslash(pair.value))
                << "value \"" << pair.value << "\" of key " << pair.key << " in " << extension;
            ++checked;
        }
    }
    EXPECT_GT(checked, 2'000);
}

TEST(CefExtension, SplitsOnlyAtSpaceKeyEquals) {
    EXPECT_EQ(pairs_of("a=1 b=two words c=3"), (Pairs{{"a", "1"}, {"b", "two words"}, {"c", "3"}}));
}

TEST(CefExtension, KeepsEqualsInUrlsAndBase64InsideValues) {
    EXPECT_EQ(pairs_of("request=https://x.example/?a=b&c=d cs1=YWJj== cs2=k=v"),
              (Pairs{{"request", "https://x.example/?a=b&c=d"}, {"cs1", "YWJj=="}, {"cs2", "k=v"}}));
}

TEST(CefExtension, UnescapesEqualsBackslashNewlineAndReturn) {
    EXPECT_EQ(pairs_of(R"(msg=set A\=1 C:\\Temp\nline\rend x=1)"), (Pairs{{"msg", "set A=1 C:\\Temp\nline\rend"}, {"x", "1"}}));
}

TEST(CefExtension, KeepsUnknownEscapesAndPipes) {
    EXPECT_EQ(pairs_of(R"(msg=a\tb | c\|d)"), (Pairs{{"msg", R"(a\tb | c\|d)"}}));
}

TEST(CefExtension, UnescapesRunsAroundEveryEscapeAndKeepsATrailingBackslash) {
    const auto unescape = [](std::string_view raw) {
        std::string out(raw.size(), '\0');
        out.resize(unescape_cef_value(raw, out.data()));
        return out;
    };
    EXPECT_EQ(unescape("plain text, no escapes"), "plain text, no escapes");
    EXPECT_EQ(unescape(R"(a\=b\\c\nd\re\qf)"), "a=b\\c\nd\re\\qf");
    EXPECT_EQ(unescape(R"(\=\=)"), "==");
    EXPECT_EQ(unescape(R"(end\)"), "end\\");
    EXPECT_EQ(unescape(R"(\)"), "\\");
    EXPECT_EQ(unescape(""), "");
}

TEST(CefExtension, ReadsEmptyValues) {
    EXPECT_EQ(pairs_of("dhost= message=x cs2="), (Pairs{{"dhost", ""}, {"message", "x"}, {"cs2", ""}}));
}

TEST(CefExtension, TrimsTheRunOfSpacesBeforeTheNextKey) {
    // Issue 13.1: producers pad fields; ArcSight's and AMA's parsers drop the whole separator run.
    EXPECT_EQ(pairs_of("message=padded value   url=x"), (Pairs{{"message", "padded value"}, {"url", "x"}}));
    EXPECT_EQ(pairs_of("src=192.0.2.7   spt=443    dst=192.0.2.8"),
              (Pairs{{"src", "192.0.2.7"}, {"spt", "443"}, {"dst", "192.0.2.8"}}));
}

TEST(CefExtension, KeepsInteriorAndEscapedSpacesWhenTrimming) {
    EXPECT_EQ(pairs_of("msg=two  words   b=1"), (Pairs{{"msg", "two  words"}, {"b", "1"}}));
    // A space after a backslash is escaped (the backslash is kept as sent): it ends the trim.
    EXPECT_EQ(pairs_of(R"(msg=x\    b=1)"), (Pairs{{"msg", R"(x\ )"}, {"b", "1"}}));
    // After an escaped backslash the spaces are plain padding again.
    EXPECT_EQ(pairs_of(R"(msg=x\\   b=1)"), (Pairs{{"msg", R"(x\)"}, {"b", "1"}}));
    EXPECT_EQ(pairs_of(R"(a=1 msg=end\ )"), (Pairs{{"a", "1"}, {"msg", R"(end\ )"}}));
}

TEST(CefExtension, GivesAnAllSpaceValueNothing) {
    EXPECT_EQ(pairs_of("a=    b=1"), (Pairs{{"a", ""}, {"b", "1"}}));
}

TEST(CefExtension, DropsTrailingSpacesAndCarriageReturnAtTheEnd) {
    EXPECT_EQ(pairs_of("a=1 b=last   \r\n"), (Pairs{{"a", "1"}, {"b", "last"}}));
}

TEST(CefExtension, AcceptsKeysWithDotsUnderscoresAndDashes) {
    EXPECT_EQ(pairs_of("ad.tag=lab dt_score=0.87 x-custom=yes"),
              (Pairs{{"ad.tag", "lab"}, {"dt_score", "0.87"}, {"x-custom", "yes"}}));
}

// A key that starts with '-' or '.' cut a command line in two ("msg=run tool --mode=fast now"
// gave Message "run tool" and a key "--mode"), and "-=2" was a key. §3.1's keys are
// [A-Za-z0-9_]+; '.' and '-' are allowed inside a key, not first. Found in review.
TEST(CefExtension, ANameStartingWithADashOrDotIsPartOfTheValue) {
    EXPECT_EQ(pairs_of("msg=run tool --mode=fast now src=1.2.3.4"),
              (Pairs{{"msg", "run tool --mode=fast now"}, {"src", "1.2.3.4"}}));
    EXPECT_EQ(pairs_of("a=1 -=2 .x=3"), (Pairs{{"a", "1 -=2 .x=3"}}));
    EXPECT_EQ(pairs_of("a=1 x-y=2 _z=3"), (Pairs{{"a", "1"}, {"x-y", "2"}, {"_z", "3"}}));
}

TEST(CefExtension, SplitsAtAnUnescapedSpaceKeyEqualsInsideProse) {
    // Reference §3.1: a value ends where the next " key=" begins, even inside prose.
    EXPECT_EQ(pairs_of("message=query string a=b was seen"), (Pairs{{"message", "query string"}, {"a", "b was seen"}}));
    EXPECT_EQ(pairs_of(R"(message=query string a\=b was seen)"), (Pairs{{"message", "query string a=b was seen"}}));
}

TEST(CefExtension, ReportsTextBeforeTheFirstKey) {
    CefExtensionReader reader("garbage here a=1");
    EXPECT_EQ(reader.leading_text(), "garbage here");
    CefExtensionReader none("just text");
    EXPECT_EQ(none.leading_text(), "just text");
    CefPair pair;
    EXPECT_FALSE(none.next(pair));
}

TEST(CefExtension, HandlesEmptyAndBlankExtensions) {
    EXPECT_TRUE(pairs_of("").empty());
    EXPECT_TRUE(pairs_of("   ").empty());
    EXPECT_EQ(pairs_of("  a=1"), (Pairs{{"a", "1"}}));
}

}  // namespace
}  // namespace cefd
