#include "engine/result.h"

#include <cstring>

namespace cefd {

std::string Error::describe() const {
    std::string out = message.empty() ? std::string("error") : message;
    if (code == Errc::http && sys != 0) {
        out += " (HTTP " + std::to_string(sys) + ")";
    } else if (sys != 0) {
        out += " (errno " + std::to_string(sys) + ": " + std::strerror(sys) + ")";
    }
    return out;
}

}  // namespace cefd
