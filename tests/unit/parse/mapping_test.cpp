#include "stages/parse/mapping.h"

#include <gtest/gtest.h>

#include <climits>
#include <string>

namespace cefd {
namespace {

TEST(CefMapping, MapsEveryDocumentedKeyToItsColumn) {
    int mapped = 0;
    for (std::size_t i = 0; i < column_count; ++i) {
        const ColumnInfo& column = columns[i];
        if (column.cef_key.empty() || column.cef_key.find(':') != std::string_view::npos) continue;
        const auto found = column_for_cef_key(column.cef_key);
        ASSERT_TRUE(found) << column.cef_key;
        const auto c = static_cast<Column>(i);
        if (c == Column::ExternalID || c == Column::DeviceCustomNumber1 || c == Column::DeviceCustomNumber2 ||
            c == Column::DeviceCustomNumber3)
            continue;  // legacy columns: their keys fill the post-2023 columns
        EXPECT_EQ(*found, c) << column.cef_key;
        ++mapped;
    }
    EXPECT_GT(mapped, 120);
}

TEST(CefMapping, FillsPost2023ColumnsForExternalIdAndCustomNumbers) {
    EXPECT_EQ(column_for_cef_key("externalId"), Column::ExtID);
    EXPECT_EQ(column_for_cef_key("cn1"), Column::FieldDeviceCustomNumber1);
    EXPECT_EQ(column_for_cef_key("cn3"), Column::FieldDeviceCustomNumber3);
    EXPECT_EQ(column_for_cef_key("cn1Label"), Column::DeviceCustomNumber1Label);
    EXPECT_EQ(column_for_cef_key("start"), Column::StartTime);
    EXPECT_EQ(column_for_cef_key("end"), Column::EndTime);
}

TEST(CefMapping, LeavesLongFormsUnknownKeysAndOtherCaseUnmapped) {
    EXPECT_FALSE(column_for_cef_key("deviceMacAddress"));
    EXPECT_FALSE(column_for_cef_key("message"));
    EXPECT_FALSE(column_for_cef_key("darktraceUrl"));
    EXPECT_FALSE(column_for_cef_key("DST"));
    EXPECT_FALSE(column_for_cef_key(""));
}

TEST(CefMapping, AKeyWithAnyOneByteChangedOrCutShortIsNotThatKey) {
    // The lookup compares keys by word-sized loads: each byte of each length must still count.
    for (std::size_t i = 0; i < column_count; ++i) {
        const std::string_view key = columns[i].cef_key;
        if (key.empty() || key.find(':') != std::string_view::npos) continue;
        const auto column = column_for_cef_key(key);
        ASSERT_TRUE(column) << key;
        for (std::size_t at = 0; at < key.size(); ++at) {
            std::string changed(key);
            changed[at] = static_cast<char>(changed[at] ^ 0x01);
            const auto found = column_for_cef_key(changed);
            EXPECT_TRUE(!found || *found != *column) << key << " changed at " << at << ": " << changed;
            const std::string_view cut = key.substr(0, at);
            const auto shorter = column_for_cef_key(cut);
            EXPECT_TRUE(!shorter || *shorter != *column) << key << " cut to " << cut;
        }
        EXPECT_NE(column_for_cef_key(std::string(key) + "x"), column) << key;
    }
}

TEST(CefNumbers, AcceptsIntegersInRangeAndNormalisesThem) {
    EXPECT_EQ(checked_integer("443", INT32_MIN, INT32_MAX), "443");
    EXPECT_EQ(checked_integer(" 443  ", INT32_MIN, INT32_MAX), "443");
    EXPECT_EQ(checked_integer("0443", INT32_MIN, INT32_MAX), "443");
    EXPECT_EQ(checked_integer("0", INT32_MIN, INT32_MAX), "0");
    EXPECT_EQ(checked_integer("-12", INT32_MIN, INT32_MAX), "-12");
    EXPECT_EQ(checked_integer("2147483647", INT32_MIN, INT32_MAX), "2147483647");
    EXPECT_EQ(checked_integer("-2147483648", INT32_MIN, INT32_MAX), "-2147483648");
    EXPECT_EQ(checked_integer("9223372036854775807", INT64_MIN, INT64_MAX), "9223372036854775807");
    EXPECT_EQ(checked_integer("-9223372036854775808", INT64_MIN, INT64_MAX), "-9223372036854775808");
}

TEST(CefNumbers, RejectsBadIntegers) {
    for (const char* bad : {"", " ", "-", "+1", "1.5", "1e3", "abc", "12a", "0x10", "2147483648", "-2147483649", "-007"})
        EXPECT_EQ(checked_integer(bad, INT32_MIN, INT32_MAX), "") << bad;
    EXPECT_EQ(checked_integer("9223372036854775808", INT64_MIN, INT64_MAX), "");
    EXPECT_EQ(checked_integer("99999999999999999999", INT64_MIN, INT64_MAX), "");
}

TEST(CefNumbers, AcceptsJsonRealsOnly) {
    for (const char* good : {"0", "1.5", "-0.1276", "51.5072", "1e10", "2.5E-3", "10"})
        EXPECT_EQ(checked_real(good), good) << good;
    for (const char* bad : {"", ".5", "5.", "01", "NaN", "inf", "1e", "1e+", "--1", "1.2.3", "1e999"})
        EXPECT_EQ(checked_real(bad), "") << bad;
}

// Only the exponent was checked (over 307: refused), so 99e307 and a 1 with 310 zeros went to a
// real column although no double holds them, and 1e308 (finite) was refused. Found in review.
TEST(CefNumbers, TakesARealOnlyWhenADoubleHoldsIt) {
    for (const char* good : {"1e308", "1.7976931348623157e308", "0.000001e-300", "-2.5e-307"})
        EXPECT_EQ(checked_real(good), good) << good;
    const std::string ones = "1" + std::string(310, '0');
    for (const std::string& bad : {std::string("99e307"), std::string("1.8e308"), ones, std::string("1e-400")})
        EXPECT_EQ(checked_real(bad), "") << bad;
}

std::string iso(std::string_view text, std::int64_t now_ms = 1'710'409'920'000) {
    const auto ms = parse_cef_time_ms(text, now_ms);
    if (!ms) return "none";
    char out[24];
    return std::string(out, format_iso_ms(*ms, out));
}

TEST(CefTime, ReadsEpochMillisecondsAndCefDateForms) {
    EXPECT_EQ(iso("1710409920000"), "2024-03-14T09:52:00.000Z");
    EXPECT_EQ(iso("Mar 14 2024 09:51:30"), "2024-03-14T09:51:30.000Z");
    EXPECT_EQ(iso("Mar 14 2024 09:51:30.250"), "2024-03-14T09:51:30.250Z");
    EXPECT_EQ(iso("Mar 14 2024 09:51:30 UTC"), "2024-03-14T09:51:30.000Z");
    EXPECT_EQ(iso("Mar 14 2024 09:51:30.5 CET"), "2024-03-14T08:51:30.500Z");
    EXPECT_EQ(iso("Mar 14 2024 09:51:30 +0100"), "2024-03-14T08:51:30.000Z");
    EXPECT_EQ(iso("Mar 14 09:51:30"), "2024-03-14T09:51:30.000Z");
    EXPECT_EQ(iso("Mar 14 09:51:30.123 GMT"), "2024-03-14T09:51:30.123Z");
    EXPECT_EQ(iso("Mar  4 2024 09:51:30"), "2024-03-04T09:51:30.000Z");
    EXPECT_EQ(iso("2024-03-14T09:51:30Z"), "2024-03-14T09:51:30.000Z");
    EXPECT_EQ(iso("2024-03-14T10:51:30.5+01:00"), "2024-03-14T09:51:30.500Z");
}

// SimpleDateFormat's `zzz` (§3.3) writes GMT+hh:mm for a zone with no name; cefd refused it and
// the start/end time went to AdditionalExtensions. Found in review.
TEST(CefTime, ReadsGmtAndUtcWithAnOffset) {
    EXPECT_EQ(iso("Mar 14 2024 09:51:30 GMT-08:00"), "2024-03-14T17:51:30.000Z");
    EXPECT_EQ(iso("Mar 14 2024 09:51:30 GMT+05:30"), "2024-03-14T04:21:30.000Z");
    EXPECT_EQ(iso("Mar 14 2024 09:51:30 UTC+01"), "2024-03-14T08:51:30.000Z");
    for (const char* bad : {"Mar 14 2024 09:51:30 GMT+", "Mar 14 2024 09:51:30 GMT+5:30", "Mar 14 2024 09:51:30 GMT05:30"})
        EXPECT_EQ(iso(bad), "none") << bad;
}

// Frozen clocks: the receive time is the parser's only clock for a year-less time.
constexpr std::int64_t dec_3_2026_ms = 1'796'284'800'000;       // 2026-12-03T08:00:00Z
constexpr std::int64_t jan_1_2027_ms = 1'798'761'610'000;       // 2027-01-01T00:00:10Z
constexpr std::int64_t dec_31_2026_ms = 1'798'761'590'000;      // 2026-12-31T23:59:50Z
constexpr std::int64_t jan_1_2029_noon_ms = 1'861'963'200'000;  // 2029-01-01T12:00:00Z
constexpr std::int64_t jun_1_2027_ms = 1'811'808'000'000;       // 2027-06-01T00:00:00Z

TEST(CefTime, DatesAYearlessTimeToThisYearUnlessThatIsMoreThanADayAhead) {
    // Issue 13.2: "Mar  5" read on 3 December 2026 was dated 2027-03-05, three months ahead.
    EXPECT_EQ(iso("Mar  5 10:00:00", dec_3_2026_ms), "2026-03-05T10:00:00.000Z");
    EXPECT_EQ(iso("Jun  1 09:00:00", dec_3_2026_ms), "2026-06-01T09:00:00.000Z");
    EXPECT_EQ(iso("Dec  3 07:59:00", dec_3_2026_ms), "2026-12-03T07:59:00.000Z");
    // Up to a day ahead is clock skew (or a sender east of UTC): still this year.
    EXPECT_EQ(iso("Dec  4 07:59:00", dec_3_2026_ms), "2026-12-04T07:59:00.000Z");
    // More than a day ahead: last year's.
    EXPECT_EQ(iso("Dec  4 08:00:01", dec_3_2026_ms), "2025-12-04T08:00:01.000Z");
    EXPECT_EQ(iso("Dec 25 12:00:00", dec_3_2026_ms), "2025-12-25T12:00:00.000Z");
}

TEST(CefTime, DatesAYearlessTimeAcrossTheYearBoundaryBothWays) {
    // Read just after New Year: a Dec 31 line is from the year that just ended.
    EXPECT_EQ(iso("Dec 31 23:59:50", jan_1_2027_ms), "2026-12-31T23:59:50.000Z");
    EXPECT_EQ(iso("Dec 31 23:59:00", 1'704'153'600'000), "2023-12-31T23:59:00.000Z");  // read 2024-01-02
    EXPECT_EQ(iso("Jan  1 00:00:05", jan_1_2027_ms), "2027-01-01T00:00:05.000Z");
    // Read just before New Year from a sender whose clock is ahead: next year's, within the day.
    EXPECT_EQ(iso("Jan  1 00:00:05", dec_31_2026_ms), "2027-01-01T00:00:05.000Z");
    EXPECT_EQ(iso("Dec 31 23:59:40", dec_31_2026_ms), "2026-12-31T23:59:40.000Z");
}

TEST(CefTime, DatesAYearlessFebruary29ToTheLastLeapYearOnlyWhenThatIsLastYear) {
    EXPECT_EQ(iso("Feb 29 10:00:00", jan_1_2029_noon_ms), "2028-02-29T10:00:00.000Z");
    EXPECT_EQ(iso("Feb 29 10:00:00", jun_1_2027_ms), "none");  // neither 2027 nor 2026 has one
}

TEST(CefTime, ReadsAnUnpaddedDayExactlyAsThePaddedOne) {
    // Issue 13.4: "Feb 5 07:02:09" (14 bytes) was unreadable; "Feb  5 07:02:09" was not.
    EXPECT_EQ(iso("Feb 5 07:02:09", dec_3_2026_ms), "2026-02-05T07:02:09.000Z");
    EXPECT_EQ(iso("Feb  5 07:02:09", dec_3_2026_ms), "2026-02-05T07:02:09.000Z");
    EXPECT_EQ(iso("Feb 05 07:02:09", dec_3_2026_ms), "2026-02-05T07:02:09.000Z");
    EXPECT_EQ(iso("Feb 5 2026 07:02:09"), "2026-02-05T07:02:09.000Z");
}

TEST(CefTime, RejectsWhatItCannotRead) {
    for (const char* bad : {"", "yesterday", "Foo 14 2024 09:51:30", "Mar 14 2024 25:00:00", "Mar 14 2024 09:51:30 XYZ",
                            "Feb 30 2024 00:00:00", "2024-13-01T00:00:00Z", "Mar 14 2024", "12:00:00"})
        EXPECT_EQ(iso(bad), "none") << bad;
}

TEST(CefTime, FormatsCivilDatesAcrossLeapYears) {
    char out[24];
    EXPECT_EQ(std::string(out, format_iso_ms(0, out)), "1970-01-01T00:00:00.000Z");
    EXPECT_EQ(std::string(out, format_iso_ms(951'782'400'000, out)), "2000-02-29T00:00:00.000Z");
    EXPECT_EQ(std::string(out, format_iso_ms(253'402'300'799'999, out)), "9999-12-31T23:59:59.999Z");
}

}  // namespace
}  // namespace cefd
