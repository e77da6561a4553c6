// tests/unit/spool/record_test.cpp: the on-disk record and ack encodings (record.h).
#include "stages/spool/record.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string_view>

namespace cefd::spool {
namespace {

std::span<const std::byte> bytes_of(std::string_view text) {
    return {reinterpret_cast<const std::byte*>(text.data()), text.size()};
}

TEST(Crc32c, MatchesKnownCheckValue) {
    // The CRC-32C check value from the catalogue of parametrised CRC algorithms.
    EXPECT_EQ(crc32c(bytes_of("123456789")), 0xe3069283U);
    EXPECT_EQ(crc32c(bytes_of("")), 0U);
}

TEST(Crc32c, ChainsAcrossCalls) {
    const std::string_view text = "The quick brown fox jumps over the lazy dog, twice over.";
    for (std::size_t split = 0; split <= text.size(); ++split) {
        const auto first = crc32c(bytes_of(text.substr(0, split)));
        EXPECT_EQ(crc32c(bytes_of(text.substr(split)), first), crc32c(bytes_of(text))) << split;
    }
}

TEST(RecordHeader, RoundTripsEveryField) {
    const RecordHeader in{.table = 1, .body_bytes = 12345, .body_crc32c = 0xdeadbeef, .id = 1ULL << 40,
                          .rows = 777, .json_bytes = 99999, .first_receive_ns = -5,
                          .last_receive_ns = 1'700'000'000'000'000'000, .created_ns = 42};
    const HeaderBytes bytes = encode_header(in);
    const auto out = decode_header(bytes);
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(out->table, in.table);
    EXPECT_EQ(out->body_bytes, in.body_bytes);
    EXPECT_EQ(out->body_crc32c, in.body_crc32c);
    EXPECT_EQ(out->id, in.id);
    EXPECT_EQ(out->rows, in.rows);
    EXPECT_EQ(out->json_bytes, in.json_bytes);
    EXPECT_EQ(out->first_receive_ns, in.first_receive_ns);
    EXPECT_EQ(out->last_receive_ns, in.last_receive_ns);
    EXPECT_EQ(out->created_ns, in.created_ns);
}

TEST(RecordHeader, RejectsAnySingleFlippedByte) {
    const HeaderBytes good = encode_header(RecordHeader{.body_bytes = 10, .id = 7, .rows = 1});
    for (std::size_t i = 0; i < good.size(); ++i) {
        HeaderBytes bad = good;
        bad[i] ^= std::byte{0x01};
        EXPECT_FALSE(decode_header(bad).has_value()) << "byte " << i;
    }
}

TEST(RecordHeader, RejectsZerosAndOversizeBody) {
    HeaderBytes zeros{};
    EXPECT_FALSE(decode_header(zeros).has_value());
    const HeaderBytes big = encode_header(RecordHeader{.body_bytes = record_body_bytes_max + 1});
    EXPECT_FALSE(decode_header(big).has_value());
}

TEST(AckEntry, RoundTripsAndRejectsDamage) {
    const AckBytes good = encode_ack(0x0102030405060708ULL);
    ASSERT_EQ(decode_ack(good), std::optional<std::uint64_t>(0x0102030405060708ULL));
    for (std::size_t i = 0; i < good.size(); ++i) {
        AckBytes bad = good;
        bad[i] ^= std::byte{0x80};
        EXPECT_FALSE(decode_ack(bad).has_value()) << "byte " << i;
    }
}

TEST(IdFloor, RoundTripsAndRejectsDamageAndAckEntries) {
    const IdFloorBytes good = encode_id_floor(0x0102030405060708ULL);
    ASSERT_EQ(decode_id_floor(good), std::optional<std::uint64_t>(0x0102030405060708ULL));
    for (std::size_t i = 0; i < good.size(); ++i) {
        IdFloorBytes bad = good;
        bad[i] ^= std::byte{0x80};
        EXPECT_FALSE(decode_id_floor(bad).has_value()) << "byte " << i;
    }
    EXPECT_FALSE(decode_id_floor(encode_ack(7)).has_value()) << "an ack entry is not a floor";
}

}  // namespace
}  // namespace cefd::spool
