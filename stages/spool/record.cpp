#include "stages/spool/record.h"

#include <bit>
#include <cstring>

namespace cefd::spool {
namespace {

constexpr std::uint32_t castagnoli_reflected = 0x82f63b78;

constexpr std::array<std::uint32_t, 256> make_crc_table() {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1U) != 0 ? (c >> 1) ^ castagnoli_reflected : c >> 1;
        table[i] = c;
    }
    return table;
}
constexpr auto crc_table = make_crc_table();

std::uint32_t crc32c_table(const unsigned char* p, std::size_t n, std::uint32_t c) noexcept {
    for (std::size_t i = 0; i < n; ++i) c = crc_table[(c ^ p[i]) & 0xffU] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__)
[[gnu::target("sse4.2")]] std::uint32_t crc32c_sse42(const unsigned char* p, std::size_t n,
                                                      std::uint32_t c) noexcept {
    std::uint64_t c64 = c;
    while (n >= 8) {
        std::uint64_t word;
        std::memcpy(&word, p, 8);
        c64 = __builtin_ia32_crc32di(c64, word);
        p += 8;
        n -= 8;
    }
    c = static_cast<std::uint32_t>(c64);
    while (n > 0) {
        c = __builtin_ia32_crc32qi(c, *p);
        ++p;
        --n;
    }
    return c;
}
const bool have_sse42 = __builtin_cpu_supports("sse4.2");
#endif

template <class T>
void put(std::byte* at, T value) noexcept {
    static_assert(std::endian::native == std::endian::little, "the format is little-endian");
    std::memcpy(at, &value, sizeof value);
}
template <class T>
T get(const std::byte* at) noexcept {
    T value;
    std::memcpy(&value, at, sizeof value);
    return value;
}

}  // namespace

std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    std::uint32_t c = ~crc;
#if defined(__x86_64__)
    if (have_sse42) return ~crc32c_sse42(p, bytes.size(), c);
#endif
    return ~crc32c_table(p, bytes.size(), c);
}

HeaderBytes encode_header(const RecordHeader& h) noexcept {
    HeaderBytes out{};
    std::byte* b = out.data();
    put<std::uint32_t>(b + 0, record_magic);
    put<std::uint16_t>(b + 4, format_version);
    put<std::uint8_t>(b + 6, h.table);
    put<std::uint8_t>(b + 7, 0);
    put<std::uint32_t>(b + 8, h.body_bytes);
    put<std::uint32_t>(b + 12, h.body_crc32c);
    put<std::uint64_t>(b + 16, h.id);
    put<std::uint32_t>(b + 24, h.rows);
    put<std::uint32_t>(b + 28, h.json_bytes);
    put<std::int64_t>(b + 32, h.first_receive_ns);
    put<std::int64_t>(b + 40, h.last_receive_ns);
    put<std::int64_t>(b + 48, h.created_ns);
    put<std::uint32_t>(b + 56, 0);
    put<std::uint32_t>(b + 60, crc32c(std::span(out).first(60)));
    return out;
}

std::optional<RecordHeader> decode_header(std::span<const std::byte, header_bytes> bytes) noexcept {
    const std::byte* b = bytes.data();
    if (get<std::uint32_t>(b + 0) != record_magic) return std::nullopt;
    if (get<std::uint16_t>(b + 4) != format_version) return std::nullopt;
    if (get<std::uint32_t>(b + 60) != crc32c(bytes.first(60))) return std::nullopt;
    RecordHeader h;
    h.table = get<std::uint8_t>(b + 6);
    h.body_bytes = get<std::uint32_t>(b + 8);
    h.body_crc32c = get<std::uint32_t>(b + 12);
    h.id = get<std::uint64_t>(b + 16);
    h.rows = get<std::uint32_t>(b + 24);
    h.json_bytes = get<std::uint32_t>(b + 28);
    h.first_receive_ns = get<std::int64_t>(b + 32);
    h.last_receive_ns = get<std::int64_t>(b + 40);
    h.created_ns = get<std::int64_t>(b + 48);
    if (h.body_bytes > record_body_bytes_max) return std::nullopt;
    return h;
}

namespace {

// An ack entry and the id floor share one 16-byte layout: value, magic, CRC32C of the first 12.
static_assert(ack_entry_bytes == 16 && id_floor_bytes == 16);

std::array<std::byte, 16> encode_tagged(std::uint64_t value, std::uint32_t magic) noexcept {
    std::array<std::byte, 16> out{};
    put<std::uint64_t>(out.data(), value);
    put<std::uint32_t>(out.data() + 8, magic);
    put<std::uint32_t>(out.data() + 12, crc32c(std::span(out).first(12)));
    return out;
}

std::optional<std::uint64_t> decode_tagged(std::span<const std::byte, 16> bytes, std::uint32_t magic) noexcept {
    if (get<std::uint32_t>(bytes.data() + 8) != magic) return std::nullopt;
    if (get<std::uint32_t>(bytes.data() + 12) != crc32c(bytes.first(12))) return std::nullopt;
    return get<std::uint64_t>(bytes.data());
}

}  // namespace

AckBytes encode_ack(std::uint64_t id) noexcept { return encode_tagged(id, ack_magic); }

std::optional<std::uint64_t> decode_ack(std::span<const std::byte, ack_entry_bytes> bytes) noexcept {
    return decode_tagged(bytes, ack_magic);
}

IdFloorBytes encode_id_floor(std::uint64_t floor) noexcept { return encode_tagged(floor, id_floor_magic); }

std::optional<std::uint64_t> decode_id_floor(std::span<const std::byte, id_floor_bytes> bytes) noexcept {
    return decode_tagged(bytes, id_floor_magic);
}

}  // namespace cefd::spool
