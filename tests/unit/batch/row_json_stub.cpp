// A minimal encoder with the row_json.h contract, used only while engine/row/row_json.cpp is
// still a placeholder (see CMakeLists.txt). Strings are escaped per RFC 8259.
#include <cstdio>
#include <cstring>
#include <ctime>

#include "engine/row/row_json.h"

namespace cefd {

std::size_t row_json_bound(const Row& row) noexcept {
    return 64 + row.column_set_count() * 40 + row.value_bytes() * 6;
}

char* write_row_json(const Row& row, char* out) noexcept {
    const std::time_t seconds = row.receive_time_ns / 1'000'000'000;
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    out += std::sprintf(out, "{\"TimeGenerated\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06dZ\"", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                        static_cast<int>(row.receive_time_ns % 1'000'000'000 / 1000));
    row.for_each([&](Column c, std::string_view value) {
        const ColumnInfo& info = columns[static_cast<std::size_t>(c)];
        *out++ = ',';
        *out++ = '"';
        std::memcpy(out, info.name.data(), info.name.size());
        out += info.name.size();
        *out++ = '"';
        *out++ = ':';
        const bool quoted = info.type == ColumnType::string || info.type == ColumnType::datetime;
        if (quoted) *out++ = '"';
        for (const char ch : value) {
            const auto u = static_cast<unsigned char>(ch);
            if (ch == '"' || ch == '\\') {
                *out++ = '\\';
                *out++ = ch;
            } else if (u < 0x20) {
                out += std::sprintf(out, "\\u%04x", u);
            } else {
                *out++ = ch;
            }
        }
        if (quoted) *out++ = '"';
    });
    *out++ = '}';
    return out;
}

}  // namespace cefd
