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

TEST(CefTime, PicksTheNearestYearWhenNoneIsGiven) {
    // Received on 2024-01-02: a Dec 31 event is from 2023.
    EXPECT_EQ(iso("Dec 31 23:59:00", 1'704'153'600'000), "2023-12-31T23:59:00.000Z");
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
