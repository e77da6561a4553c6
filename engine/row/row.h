// engine/row/row.h: one row for CommonSecurityLog or Syslog (Row::table), as the parser fills it
// and the batcher encodes it.
//
// A Row holds string_views, never copies: values point into the message bytes in the lane ring
// or into the parser's per-lane scratch arena (unescaped values, AdditionalExtensions, ISO
// timestamps). Both stay valid until the worker has encoded the row, which it does before it
// releases the message. A Row is reused for every message on a lane; clear() costs three stores.
//
// Values of int/long/real columns are already-validated JSON number text; datetime values are
// ISO-8601 UTC text. The encoder (row_json.h) trusts this; the parser guarantees it.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <string_view>

#include "engine/row/columns.h"

namespace cefd {

/// Which Azure table (and so which DCR stream) a row is for.
enum class Table : std::uint8_t { common_security_log = 0, syslog = 1 };

/// True when `table` has column `c` (columns.h). The encoder writes no other column.
constexpr bool in_table(Column c, Table table) noexcept {
    const auto i = static_cast<std::size_t>(c);
    return table == Table::syslog ? detail::syslog_columns[i] : i < common_security_log_column_count;
}

class Row {
public:
    void clear() noexcept { present_ = {}; value_bytes_ = 0; }

    void set(Column c, std::string_view value) noexcept {
        const auto i = static_cast<std::size_t>(c);
        if (!has(c)) value_bytes_ += value.size();
        else value_bytes_ += value.size() - values_[i].size();
        values_[i] = value;
        present_[i / 64] |= std::uint64_t{1} << (i % 64);
    }
    void erase(Column c) noexcept {
        const auto i = static_cast<std::size_t>(c);
        if (!has(c)) return;
        value_bytes_ -= values_[i].size();
        present_[i / 64] &= ~(std::uint64_t{1} << (i % 64));
    }
    [[nodiscard]] bool has(Column c) const noexcept {
        const auto i = static_cast<std::size_t>(c);
        return (present_[i / 64] >> (i % 64)) & 1U;
    }
    [[nodiscard]] std::string_view get(Column c) const noexcept {
        return has(c) ? values_[static_cast<std::size_t>(c)] : std::string_view{};
    }

    /// Calls fn(Column, value) for every set column, in column order.
    template <class Fn>
    void for_each(Fn&& fn) const {
        for (std::size_t word = 0; word < present_.size(); ++word) {
            std::uint64_t bits = present_[word];
            while (bits != 0) {
                const auto i = word * 64 + static_cast<std::size_t>(std::countr_zero(bits));
                bits &= bits - 1;
                fn(static_cast<Column>(i), values_[i]);
            }
        }
    }

    /// Sum of the sizes of all set values: bounds the encoded size (row_json.h).
    [[nodiscard]] std::size_t value_bytes() const noexcept { return value_bytes_; }
    [[nodiscard]] std::size_t column_set_count() const noexcept {
        std::size_t n = 0;
        for (auto w : present_) n += static_cast<std::size_t>(std::popcount(w));
        return n;
    }

    /// TimeGenerated: the receive time (CLOCK_REALTIME ns). The encoder writes it as ISO-8601.
    std::int64_t receive_time_ns = 0;
    Table table = Table::common_security_log;

private:
    static_assert(column_count <= 192, "present_ holds three 64-bit words");
    std::array<std::uint64_t, 3> present_{};
    std::size_t value_bytes_ = 0;
    std::array<std::string_view, column_count> values_;
};

}  // namespace cefd
