#include "engine/record.h"

#include <arpa/inet.h>

namespace cefd {

SourceAddress SourceAddress::from_sockaddr(const sockaddr* sa) noexcept {
    SourceAddress out;
    if (sa == nullptr) return out;
    if (sa->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        out.family = AF_INET;
        out.port = ntohs(in->sin_port);
        std::memcpy(out.addr, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        out.port = ntohs(in6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            // A dual-stack socket reports IPv4 senders as ::ffff:a.b.c.d; store them as IPv4 so
            // Computer reads the same whichever socket the message came in on.
            out.family = AF_INET;
            std::memcpy(out.addr, reinterpret_cast<const std::uint8_t*>(&in6->sin6_addr) + 12, 4);
        } else {
            out.family = AF_INET6;
            std::memcpy(out.addr, &in6->sin6_addr, 16);
        }
    }
    return out;
}

std::size_t SourceAddress::format(char* out) const noexcept {
    if (family != AF_INET && family != AF_INET6) {
        out[0] = '\0';
        return 0;
    }
    if (inet_ntop(family, addr, out, INET6_ADDRSTRLEN) == nullptr) {
        out[0] = '\0';
        return 0;
    }
    return std::strlen(out);
}

std::string SourceAddress::to_string() const {
    char buffer[INET6_ADDRSTRLEN];
    return std::string(buffer, format(buffer));
}

}  // namespace cefd
