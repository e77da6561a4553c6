// engine/sysctl.h: reading one number from /proc/sys, for the receive engine's buffer cap and
// cefd check's host advice.
#pragma once

#include <cstdio>
#include <optional>

namespace cefd {

/// The number a /proc/sys file (or any file) starts with, or nothing when it cannot be read.
inline std::optional<long long> read_sysctl(const char* path) {
    std::FILE* file = std::fopen(path, "re");
    if (file == nullptr) return std::nullopt;
    long long value = 0;
    const bool ok = std::fscanf(file, "%lld", &value) == 1;
    std::fclose(file);
    if (!ok) return std::nullopt;
    return value;
}

}  // namespace cefd
