// The key table behind Config: every key of cefd.toml, its doc, default place in Config and
// bounds, declared once. config.cpp reads files through it, config_reload.cpp diffs and copies
// running configs through it, config_keys() lists it for check-config and the example file.
// Private to engine/pipeline.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/pipeline/config.h"

namespace cefd::config_detail {

/// A key's place in Config. An enum is read as its std::uint8_t; `names` lists its values in
/// declaration order (every config enum is a uint8_t counted from 0).
struct EnumField {
    std::uint8_t& (*ref)(Config&);
    std::vector<std::string_view> names;
};
struct TargetsField {};  // [[azure.targets]]: read by hand in read_azure_extras()
using Field = std::variant<std::uint16_t& (*)(Config&), std::uint32_t& (*)(Config&), std::uint64_t& (*)(Config&),
                           bool& (*)(Config&), std::string& (*)(Config&), std::vector<std::uint32_t>& (*)(Config&),
                           Secret& (*)(Config&), EnumField, TargetsField>;

struct Key {
    ConfigKey info;
    Field field;
    std::int64_t min = 0;   // bounds, checked when the file sets the key; max < min: the type's range
    std::int64_t max = -1;  // (most stages check their own ranges in their validate())
};

/// Every key, in the order of the documented example.
const std::vector<Key>& keys();

/// The table entry behind a ConfigKey from config_keys().
const Key& key_of(const ConfigKey& info);

/// `text` as a TOML basic string, quotes included.
std::string toml_string(std::string_view text);

}  // namespace cefd::config_detail
