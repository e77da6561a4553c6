#include "stages/parse/syslog.h"

#include <gtest/gtest.h>

#include <string>

namespace cefd {
namespace {

TEST(SyslogFraming, ReadsRfc3164WithPriHostAndNoTag) {
    const auto m = parse_syslog("<134>Mar 14 09:15:02 dt-master-01 CEF:0|a|b|c|d|e|1|x=y");
    EXPECT_EQ(m.form, SyslogForm::rfc3164);
    EXPECT_EQ(m.pri, 134);
    EXPECT_EQ(m.timestamp, "Mar 14 09:15:02");
    EXPECT_EQ(m.hostname, "dt-master-01");
    EXPECT_EQ(m.app_name, "");
    EXPECT_EQ(m.message, "CEF:0|a|b|c|d|e|1|x=y");
    EXPECT_EQ(m.after_timestamp, "dt-master-01 CEF:0|a|b|c|d|e|1|x=y");
}

// Found by tests/fuzz/syslog_fuzz.cpp: "-" was taken as the host of a 3164 line, so Computer
// became "-" instead of the sender address (README: Computer).
TEST(SyslogFraming, ReadsRfc3164DashHostnameAsEmpty) {
    const auto m = parse_syslog("<13>Mar 14 09:15:02 - had");
    EXPECT_EQ(m.form, SyslogForm::rfc3164);
    EXPECT_EQ(m.hostname, "");
    EXPECT_EQ(m.message, "had");
}

// An IPv6 host that ends in "::" ends in ':', like a TAG; it was read as the tag "2001:db8:" and
// the line had no host.
TEST(SyslogFraming, ReadsAnIpv6HostEndingInDoubleColonAsTheHost) {
    for (const char* host : {"2001:db8::", "fe80::", "2001:db8::7", "::ffff:192.0.2.1"}) {
        const std::string line = "<13>Mar 14 09:15:02 " + std::string(host) + " app[8]: text";
        const auto m = parse_syslog(line);  // m views into line
        EXPECT_EQ(m.hostname, host);
        EXPECT_EQ(m.app_name, "app");
        EXPECT_EQ(m.procid, "8");
        EXPECT_EQ(m.message, "text");
    }
    // Tags that look a little like addresses stay tags.
    for (const char* tag : {"cafe:", "dead:", "beef[12]:", "abc:"}) {
        const std::string line = "<13>Mar 14 09:15:02 " + std::string(tag) + " text";
        const auto m = parse_syslog(line);
        EXPECT_EQ(m.hostname, "") << tag;
        EXPECT_EQ(m.message, "text") << tag;
    }
}

TEST(SyslogFraming, ReadsSpacePaddedAndUnpaddedDays) {
    EXPECT_EQ(parse_syslog("<134>Mar  4 09:15:07 host CEF:0|x").hostname, "host");
    EXPECT_EQ(parse_syslog("<134>Mar  4 09:15:07 host CEF:0|x").timestamp, "Mar  4 09:15:07");
    EXPECT_EQ(parse_syslog("<134>Mar 4 09:15:07 host CEF:0|x").timestamp, "Mar 4 09:15:07");
    EXPECT_EQ(parse_syslog("<134>Mar 4 09:15:07 host CEF:0|x").message, "CEF:0|x");
}

TEST(SyslogFraming, ReadsRfc3164WithoutPri) {
    const auto m = parse_syslog("May 18 16:02:00 radiflow-labs-isid radiflow-labs-isid[1] CEF:0|radiflow|isid");
    EXPECT_EQ(m.form, SyslogForm::rfc3164);
    EXPECT_EQ(m.pri, -1);
    EXPECT_EQ(m.hostname, "radiflow-labs-isid");
    EXPECT_EQ(m.app_name, "radiflow-labs-isid");
    EXPECT_EQ(m.procid, "1");
    EXPECT_EQ(m.message, "CEF:0|radiflow|isid");
}

TEST(SyslogFraming, ReadsTagWithColonAndPid) {
    const auto m = parse_syslog("<134>Mar 14 09:16:40 dt-master-01 darktrace[4711]: CEF:0|x");
    EXPECT_EQ(m.hostname, "dt-master-01");
    EXPECT_EQ(m.app_name, "darktrace");
    EXPECT_EQ(m.procid, "4711");
    EXPECT_EQ(m.message, "CEF:0|x");
    EXPECT_EQ(parse_syslog("<134>Mar 14 09:16:40 dt-master-01 darktrace: CEF:0|x").app_name, "darktrace");
}

// RFC 3164 ends a TAG at its colon, so "darktrace:CEF:0|..." is the tag "darktrace" and the
// message "CEF:0|...". cefd read the whole token as a host or left it in the message, where
// " CEF:" (with a space) was not found: the event was dropped as not_cef. Found in review.
TEST(SyslogFraming, ReadsCefGluedToTheTagColon) {
    auto m = parse_syslog("<134>Mar 14 09:15:02 dt-master-01 darktrace:CEF:0|Darktrace|x|6.1|26|n|7|a=1");
    EXPECT_EQ(m.hostname, "dt-master-01");
    EXPECT_EQ(m.app_name, "darktrace");
    EXPECT_EQ(m.message, "CEF:0|Darktrace|x|6.1|26|n|7|a=1");
    m = parse_syslog("<134>Mar 14 09:15:02 darktrace[12]:CEF:0|x");
    EXPECT_EQ(m.hostname, "");
    EXPECT_EQ(m.app_name, "darktrace");
    EXPECT_EQ(m.procid, "12");
    EXPECT_EQ(m.message, "CEF:0|x");
    // Not a tag: a colon with no name before it, or no CEF after it.
    EXPECT_EQ(parse_syslog("<134>Mar 14 09:15:02 host :CEF:0|x").message, ":CEF:0|x");
    EXPECT_EQ(parse_syslog("<134>Mar 14 09:15:02 host a:b c").message, "a:b c");
    // An IPv6 host with a CEF group is still the host (a regression caught in review).
    m = parse_syslog("<134>Mar 14 09:15:02 2001:CEF:0:1::5 CEF:0|x");
    EXPECT_EQ(m.hostname, "2001:CEF:0:1::5");
    EXPECT_EQ(m.message, "CEF:0|x");
    // "darktrace:CEF: 0|..." is not glued CEF ("CEF: 0" is logger's tag form): as before, the
    // whole token is the tag.
    EXPECT_EQ(parse_syslog("<134>Mar 14 09:15:02 host darktrace:CEF: 0|x").app_name, "darktrace:CEF");
}

// RFC 5424 senders that leave out trailing header fields instead of writing "-": the CEF sits
// where APP-NAME, PROCID or MSGID should be. It was read as those fields and the event
// dropped as not_cef. Found in review.
TEST(SyslogFraming, ReadsCefWhereAnRfc5424HeaderFieldShouldBe) {
    for (const char* line : {"<134>1 2024-03-14T09:15:02Z dt-master-01 CEF:0|Darktrace|x|6.1|26|n|7|a=1",
                             "<134>1 2024-03-14T09:15:02Z dt-master-01 darktrace CEF:0|Darktrace|x|6.1|26|n|7|a=1",
                             "<134>1 2024-03-14T09:15:02Z dt-master-01 darktrace - CEF:0|Darktrace|x|6.1|26|n|7|a=1",
                             "<134>1 2024-03-14T09:15:02Z dt-master-01 darktrace - - CEF:0|Darktrace|x|6.1|26|n|7|a=1"}) {
        const auto m = parse_syslog(line);
        EXPECT_EQ(m.form, SyslogForm::rfc5424) << line;
        EXPECT_EQ(m.hostname, "dt-master-01") << line;
        EXPECT_EQ(m.message, "CEF:0|Darktrace|x|6.1|26|n|7|a=1") << line;
    }
    EXPECT_EQ(parse_syslog("<134>1 2024-03-14T09:15:02Z dt-master-01 darktrace - CEF:0|x").app_name, "darktrace");
}

TEST(SyslogFraming, TreatsATagRightAfterTheTimestampAsNoHostname) {
    const auto m = parse_syslog("<13>Mar 14 09:16:40 darktrace: CEF:0|x");
    EXPECT_EQ(m.hostname, "");
    EXPECT_EQ(m.app_name, "darktrace");
    EXPECT_EQ(m.message, "CEF:0|x");
}

TEST(SyslogFraming, ReadsLoggerCefTagAsTagAndVersionAsMessage) {
    const auto m = parse_syslog("<164>Mar 14 09:51:00 collector-01 CEF: 0|Darktrace|x");
    EXPECT_EQ(m.hostname, "collector-01");
    EXPECT_EQ(m.app_name, "CEF");
    EXPECT_EQ(m.message, "0|Darktrace|x");
}

TEST(SyslogFraming, ReadsIsoTimestampInA3164Header) {
    const auto m = parse_syslog("<134>2024-03-14T09:15:02.123+01:00 host app: CEF:0|x");
    EXPECT_EQ(m.form, SyslogForm::rfc3164);
    EXPECT_EQ(m.timestamp, "2024-03-14T09:15:02.123+01:00");
    EXPECT_EQ(m.hostname, "host");
    EXPECT_EQ(m.message, "CEF:0|x");
}

TEST(SyslogFraming, ReadsYearInBsdTimestamp) {
    const auto m = parse_syslog("<134>Mar 14 2024 09:15:02 host CEF:0|x");
    EXPECT_EQ(m.timestamp, "Mar 14 2024 09:15:02");
    EXPECT_EQ(m.hostname, "host");
}

TEST(SyslogFraming, ReadsRfc5424WithNilValues) {
    const auto m = parse_syslog("<134>1 2024-03-14T09:22:03.412Z dt-master-01 darktrace - - - CEF:0|x");
    EXPECT_EQ(m.form, SyslogForm::rfc5424);
    EXPECT_EQ(m.timestamp, "2024-03-14T09:22:03.412Z");
    EXPECT_EQ(m.hostname, "dt-master-01");
    EXPECT_EQ(m.app_name, "darktrace");
    EXPECT_EQ(m.procid, "");
    EXPECT_EQ(m.msgid, "");
    EXPECT_EQ(m.structured_data, "");
    EXPECT_EQ(m.message, "CEF:0|x");
}

TEST(SyslogFraming, ReadsRfc5424NilHostnameAsEmpty) {
    const auto m = parse_syslog("<134>1 - - - - - - CEF:0|x");
    EXPECT_EQ(m.form, SyslogForm::rfc5424);
    EXPECT_EQ(m.timestamp, "");
    EXPECT_EQ(m.hostname, "");
    EXPECT_EQ(m.message, "CEF:0|x");
}

TEST(SyslogFraming, ReadsRfc5424OffsetAndStructuredData) {
    const auto m = parse_syslog(
        "<134>1 2024-03-14T10:22:03+01:00 h.example.com darktrace 4711 MB [meta sequenceId=\"42\"] CEF:0|x");
    EXPECT_EQ(m.timestamp, "2024-03-14T10:22:03+01:00");
    EXPECT_EQ(m.hostname, "h.example.com");
    EXPECT_EQ(m.procid, "4711");
    EXPECT_EQ(m.msgid, "MB");
    EXPECT_EQ(m.structured_data, "[meta sequenceId=\"42\"]");
    EXPECT_EQ(m.message, "CEF:0|x");
}

TEST(SyslogFraming, KeepsEscapedBracketQuoteAndBackslashInsideStructuredData) {
    const std::string sd = R"([a x="q\]\"\\" y="2"][b z="]"])";
    const std::string line = "<134>1 2024-03-14T09:22:03Z h app - - " + sd + " CEF:0|x";  // outlives the views
    const auto m = parse_syslog(line);
    EXPECT_EQ(m.structured_data, sd);
    EXPECT_EQ(m.message, "CEF:0|x");
}

TEST(SyslogFraming, StripsBomBeforeRfc5424Message) {
    const auto m = parse_syslog("<134>1 2024-03-14T09:22:03Z h app - - - \xEF\xBB\xBF" "CEF:0|x");
    EXPECT_EQ(m.message, "CEF:0|x");
}

TEST(SyslogFraming, ReadsFractionalSecondsWithMicroseconds) {
    const auto m = parse_syslog("<134>1 2024-03-14T09:22:03.123456-05:00 h app - - - CEF:0|x");
    EXPECT_EQ(m.timestamp, "2024-03-14T09:22:03.123456-05:00");
}

TEST(SyslogFraming, TakesBareCefAsAllMessage) {
    const auto m = parse_syslog("CEF:0|a|b|c|d|e|1|x=y\r\n");
    EXPECT_EQ(m.form, SyslogForm::none);
    EXPECT_EQ(m.message, "CEF:0|a|b|c|d|e|1|x=y");
    EXPECT_EQ(m.hostname, "");
}

TEST(SyslogFraming, TakesPriFollowedByCef) {
    const auto m = parse_syslog("<164>CEF:0|Mock-test|MOCK");
    EXPECT_EQ(m.form, SyslogForm::none);
    EXPECT_EQ(m.pri, 164);
    EXPECT_EQ(m.message, "CEF:0|Mock-test|MOCK");
}

TEST(SyslogFraming, LeavesAnUnknownPrefixInTheMessage) {
    const auto m = parse_syslog("Oct 30, 2021 10:34:23 host.domain.com CEF:0|x");
    EXPECT_EQ(m.form, SyslogForm::none);
    EXPECT_EQ(m.message, "Oct 30, 2021 10:34:23 host.domain.com CEF:0|x");
}

TEST(SyslogFraming, RejectsPriOver191AsPri) {
    const auto m = parse_syslog("<999>CEF:0|x");
    EXPECT_EQ(m.pri, -1);
    EXPECT_EQ(m.message, "<999>CEF:0|x");
}

TEST(SyslogFraming, SurvivesTruncatedHeaders) {
    for (const char* line : {"<", "<1", "<134>", "<134>1", "<134>1 ", "<134>1 2024-03-14T09:22:03Z",
                             "<134>1 2024-03-14T09:22:03Z h a p m [x", "Mar 14 09:15:02", "Mar 14 09:15:02 host", ""}) {
        const auto m = parse_syslog(line);
        EXPECT_LE(m.message.size(), std::string_view(line).size()) << line;
    }
}

}  // namespace
}  // namespace cefd
