// Capturer and CaptureReader on a real temporary directory.
#include "engine/capture/capture.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/capture/capture_format.h"
#include "tests/support/support.h"

namespace {

using namespace std::chrono_literals;
using cefd::CaptureConfig;
using cefd::CaptureReader;
using cefd::CapturedMessage;
using cefd::Capturer;
using cefd::MessageMeta;
using cefd::Transport;

MessageMeta meta_for(std::int64_t time_ns, std::uint16_t port, Transport transport) {
    MessageMeta meta;
    meta.receive_time_ns = time_ns;
    meta.transport = transport;
    meta.source.family = AF_INET;
    meta.source.port = port;
    const std::uint32_t address = htonl(0x7f000001 + port % 7);
    std::memcpy(meta.source.addr, &address, 4);
    return meta;
}

std::vector<std::string> capture_files(const std::string& dir) {
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (name.starts_with(cefd::capture_format::file_prefix)) files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
    return files;
}

std::vector<CapturedMessage> read_all(const std::string& path, std::vector<std::string>& texts, bool* truncated = nullptr) {
    auto reader = CaptureReader::open(path);
    EXPECT_TRUE(reader.ok()) << (reader.ok() ? "" : reader.error().describe());
    std::vector<CapturedMessage> messages;
    if (!reader.ok()) return messages;
    CapturedMessage message;
    while (reader.value()->next(message)) {
        texts.emplace_back(message.bytes);
        messages.push_back(message);
    }
    if (truncated != nullptr) *truncated = reader.value()->truncated();
    return messages;
}

TEST(Capture, WritesEveryMessageWithItsSourceTransportAndTime) {
    cefd::test::TempDir dir;
    auto capturer = Capturer::open(CaptureConfig{.dir = dir.file("capture")}, 2);
    ASSERT_TRUE(capturer.ok());
    capturer.value()->start();
    std::vector<std::string> sent;
    for (int i = 0; i < 1000; ++i) {
        sent.push_back("<134>CEF:0|Darktrace|DCIP|6|" + std::to_string(i) + "|x|5|msg=" + std::string(static_cast<std::size_t>(i % 300), 'a'));
        capturer.value()->offer(0, meta_for(1'000'000'000LL + i, static_cast<std::uint16_t>(1000 + i), i % 2 ? Transport::tcp : Transport::udp),
                                sent.back());
    }
    capturer.value()->stop();
    EXPECT_EQ(cefd::read(capturer.value()->stats().captured), 1000u);
    const auto files = capture_files(dir.file("capture"));
    ASSERT_EQ(files.size(), 1u);
    std::vector<std::string> texts;
    const auto messages = read_all(files[0], texts);
    ASSERT_EQ(texts, sent);
    for (int i = 0; i < 1000; ++i) {
        EXPECT_EQ(messages[static_cast<std::size_t>(i)].meta.receive_time_ns, 1'000'000'000LL + i);
        EXPECT_EQ(messages[static_cast<std::size_t>(i)].meta.source.port, 1000 + i);
        EXPECT_EQ(messages[static_cast<std::size_t>(i)].meta.source.to_string(), meta_for(0, static_cast<std::uint16_t>(1000 + i), Transport::udp).source.to_string());
        EXPECT_EQ(messages[static_cast<std::size_t>(i)].meta.transport, i % 2 ? Transport::tcp : Transport::udp);
    }
    // The file is a plain zstd frame: the zstd tool reads it too.
    std::string magic;
    if (cefd::test::run_command("zstd -dc " + files[0] + " 2>/dev/null | head -c 8", &magic) == 0 && !magic.empty()) {
        EXPECT_EQ(magic, "CEFDCAP1");
    }
}

TEST(Capture, RotatesBySizeAndDeletesTheOldestPastMaxBytesCountingThem) {
    cefd::test::TempDir dir;
    // Random-looking bytes compress badly, so the files really reach rotate_bytes.
    std::string noise(4000, '\0');
    std::uint64_t state = 12345;
    auto capturer = Capturer::open(
        CaptureConfig{.dir = dir.file("capture"), .max_bytes = 3 << 20, .rotate_bytes = 1 << 20, .queue_bytes = 1 << 22}, 1);
    ASSERT_TRUE(capturer.ok());
    capturer.value()->start();
    for (int i = 0; i < 2000; ++i) {  // about 8 MB
        for (char& c : noise) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            c = static_cast<char>(32 + (state >> 33) % 90);
        }
        capturer.value()->offer(0, meta_for(i, 1, Transport::udp), noise);
        // 200 messages are 800 KB of the 4 MiB queue: let the capture thread catch up, so
        // nothing is dropped and the byte counts below are exact.
        if (i % 200 == 199) {
            const auto want = static_cast<std::uint64_t>(i + 1);
            ASSERT_TRUE(cefd::test::wait_until(10s, [&] { return cefd::read(capturer.value()->stats().captured) == want; }))
                << "captured " << cefd::read(capturer.value()->stats().captured) << " of " << want;
        }
    }
    capturer.value()->stop();
    const auto& stats = capturer.value()->stats();
    EXPECT_GE(cefd::read(stats.files), 4u);
    EXPECT_GE(cefd::read(stats.deleted_files), 1u);
    const auto files = capture_files(dir.file("capture"));
    EXPECT_EQ(files.size(), cefd::read(stats.files) - cefd::read(stats.deleted_files));
    std::uintmax_t total = 0;
    for (const auto& file : files) total += std::filesystem::file_size(file);
    EXPECT_LE(total, 3u << 20);
    // Each remaining file reads back whole.
    for (const auto& file : files) {
        std::vector<std::string> texts;
        bool truncated = true;
        read_all(file, texts, &truncated);
        EXPECT_FALSE(truncated) << file;
        EXPECT_GT(texts.size(), 0u) << file;
    }
}

TEST(Capture, AFullQueueDropsFromTheCaptureOnlyAndCountsIt) {
    cefd::test::TempDir dir;
    auto capturer = Capturer::open(CaptureConfig{.dir = dir.file("capture"), .queue_bytes = 1 << 20}, 1);
    ASSERT_TRUE(capturer.ok());
    cefd::MetricsRegistry metrics;
    capturer.value()->register_metrics(metrics);
    // Not started: nothing drains the 1 MiB queue, so 2,000 messages of 1 KB overflow it.
    const std::string message(1000, 'x');
    for (int i = 0; i < 2000; ++i) capturer.value()->offer(0, meta_for(i, 1, Transport::udp), message);
    const double dropped = metrics.value("capture_dropped_total");
    EXPECT_GT(dropped, 0);
    EXPECT_LT(dropped, 2000);
    capturer.value()->start();
    capturer.value()->stop();
    EXPECT_EQ(cefd::read(capturer.value()->stats().captured) + static_cast<std::uint64_t>(dropped), 2000u);
}

TEST(Capture, AFileCutShortReadsUpToItsLastCompleteRecord) {
    cefd::test::TempDir dir;
    auto capturer = Capturer::open(CaptureConfig{.dir = dir.file("capture")}, 1);
    ASSERT_TRUE(capturer.ok());
    capturer.value()->start();
    std::string noise(2000, '\0');
    for (int i = 0; i < 500; ++i) {
        for (std::size_t j = 0; j < noise.size(); ++j) noise[j] = static_cast<char>('a' + (i * 31 + j * 7) % 26);
        capturer.value()->offer(0, meta_for(i, 1, Transport::udp), noise);
    }
    capturer.value()->stop();
    const auto files = capture_files(dir.file("capture"));
    ASSERT_EQ(files.size(), 1u);
    const auto size = std::filesystem::file_size(files[0]);
    std::filesystem::resize_file(files[0], size / 2);  // as if cefd was killed mid-write
    std::vector<std::string> texts;
    bool truncated = false;
    read_all(files[0], texts, &truncated);
    EXPECT_TRUE(truncated);
    EXPECT_LT(texts.size(), 500u);
    for (const std::string& text : texts) EXPECT_EQ(text.size(), 2000u);
    // Garbage is not a capture file, and does not crash the reader.
    cefd::test::write_file(dir.file("garbage"), "definitely not zstd");
    EXPECT_FALSE(CaptureReader::open(dir.file("garbage")).ok());
}

}  // namespace
