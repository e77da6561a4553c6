#include "tools/loadgen/templates.h"

#include <array>
#include <cstdio>
#include <string_view>

namespace cefd::loadgen {
namespace {

/// splitmix64: small, fast and fully determined by its seed (std::mt19937's distributions are
/// not specified bit for bit across standard libraries, this is).
class Random {
public:
    explicit Random(std::uint64_t seed) : state_(seed) {}
    std::uint64_t next() noexcept {
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    /// Uniform in [low, high].
    std::uint64_t between(std::uint64_t low, std::uint64_t high) noexcept { return low + next() % (high - low + 1); }
    template <class T, std::size_t n>
    const T& pick(const std::array<T, n>& items) noexcept {
        return items[next() % n];
    }

private:
    std::uint64_t state_;
};

constexpr std::array<std::string_view, 12> months{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<std::string_view, 10> models{
    "Anomalous Connection::Data Sent to Rare Domain",
    "Anomalous Connection::Unusual Port",
    "Anomalous Connection::Anomalous SSL without SNI to New External",
    "Compliance::Possible Tor Usage",
    "Device::Suspicious Command Line",
    "Unusual Activity::Unusual Activity from New Device",
    "Anomalous Server Activity::Anomalous External Activity from Critical Network Device",
    "SaaS::Access::Unusual SaaS Login Location",
    "User::Unusual External Source for Credential Use",
    "Anomalous File::Masqueraded File Transfer"};
constexpr std::array<std::string_view, 6> labels{"Finance Workstations", "Domain Controllers", "Engineering Laptops",
                                                 "Servers", "Guest Wi-Fi", "Executive Devices"};
constexpr std::array<std::string_view, 6> tags{"Finance, Critical", "Server", "Laptop", "Critical, Admin",
                                               "Guest", "VIP, Mobile"};
constexpr std::array<std::string_view, 6> users{"jdoe", "asmith", "mlopez", "kchen", "svc-backup", "pnguyen"};
constexpr std::array<std::string_view, 6> domains{"rare-endpoint.example.net", "cdn-update.example.org",
                                                  "files.example.com", "login.example.io",
                                                  "telemetry.example.net", "paste.example.org"};
constexpr std::array<std::string_view, 4> protocols{"TCP", "UDP", "TCP", "TCP"};
constexpr std::array<std::string_view, 5> incidents{"Possible SSL Command and Control",
                                                    "Scanning of Multiple Devices",
                                                    "Unusual Repeated Connections",
                                                    "Suspicious Remote Service Control",
                                                    "Large Volume of Data Transferred"};
constexpr std::array<std::string_view, 6> findings{
    "The device made repeated TLS connections to a rare external endpoint that no other device in the network "
    "has contacted, with a regular beaconing interval and small, similar payload sizes in each direction.",
    "The device scanned a large number of internal addresses on administrative ports in a short period, which "
    "is unusual for this device and for its peer group over the last four weeks.",
    "Shortly afterwards the device uploaded an unusually large volume of data to the same endpoint over an "
    "encrypted channel; the upload is several orders of magnitude above this device's normal behaviour.",
    "The device used a remote service control protocol against several servers it has never contacted before, "
    "with credentials that were recently seen from an unusual external source.",
    "Multiple connections were made to endpoints with newly registered domains and self-signed certificates; "
    "the JA3 fingerprint of the client is rare across the deployment.",
    "The activity started outside the device's normal working hours and continued for several hours, in bursts "
    "that do not match any scheduled task or software update seen on this network."};
constexpr std::array<std::string_view, 5> statuses{"Probe error", "Bandwidth threshold exceeded on probe",
                                                   "Appliance health: disk usage above 85%",
                                                   "Subnet traffic not seen for 24 hours",
                                                   "Failed to contact Darktrace Cloud services"};

std::string ip(Random& random, bool internal) {
    char text[20];
    if (internal) {
        std::snprintf(text, sizeof text, "10.%u.%u.%u", static_cast<unsigned>(random.between(0, 255)),
                      static_cast<unsigned>(random.between(0, 255)), static_cast<unsigned>(random.between(1, 254)));
    } else {  // documentation ranges only
        static constexpr std::array<std::string_view, 3> nets{"192.0.2.", "198.51.100.", "203.0.113."};
        std::snprintf(text, sizeof text, "%s%u", random.pick(nets).data(),
                      static_cast<unsigned>(random.between(1, 254)));
    }
    return text;
}

std::string uuid(Random& random) {
    char text[40];
    const std::uint64_t a = random.next();
    const std::uint64_t b = random.next();
    std::snprintf(text, sizeof text, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                  static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
                  static_cast<unsigned>(b >> 48), static_cast<unsigned long long>(b & 0xffffffffffffULL));
    return text;
}

/// "<134>Nov 29 07:00:37 dt-master " and the matching rt= value "Nov 29 2024 07:00:37".
struct When {
    std::string syslog;
    std::string rt;
};
When when(Random& random) {
    const auto month = random.pick(months);
    const auto day = static_cast<unsigned>(random.between(1, 28));
    const auto hour = static_cast<unsigned>(random.between(0, 23));
    const auto minute = static_cast<unsigned>(random.between(0, 59));
    const auto second = static_cast<unsigned>(random.between(0, 59));
    char syslog[64];
    char rt[40];
    std::snprintf(syslog, sizeof syslog, "<134>%s %2u %02u:%02u:%02u dt-master ", month.data(), day, hour, minute,
                  second);
    std::snprintf(rt, sizeof rt, "%s %02u 2024 %02u:%02u:%02u", month.data(), day, hour, minute, second);
    return {syslog, rt};
}

std::string model_breach(Random& random) {
    const When at = when(random);
    const std::string model(random.pick(models));
    const std::string category = model.substr(0, model.find("::"));
    const auto id = random.between(100'000, 9'999'999);
    const std::string source = ip(random, true);
    const std::string destination = ip(random, false);
    const std::string domain(random.pick(domains));
    const std::string user(random.pick(users));
    const auto score = random.between(5, 100);
    const auto megabytes = random.between(1, 4'000);
    const auto connections = random.between(1, 200);
    const auto device = random.between(1, 30'000);
    char host[32];
    std::snprintf(host, sizeof host, "ws-%04u.corp.example", static_cast<unsigned>(random.between(0, 9999)));
    std::string line = at.syslog + "CEF:0|Darktrace|DCIP|6.1.2|" + std::to_string(random.between(10, 999)) + "|" +
                       model + "|" + std::to_string(score / 20 + 1) + "|rt=" + at.rt + " dvc=10.0.0.1 externalId=" +
                       std::to_string(id) + " cat=" + category + " msg=Device " + source + " sent " +
                       std::to_string(megabytes) + " MB to " + domain + " over " + std::to_string(connections) +
                       " connections; destination first seen " + std::to_string(random.between(0, 30)) +
                       " days ago src=" + source + " spt=" + std::to_string(random.between(1024, 65535)) +
                       " dst=" + destination + " dhost=" + domain + " dpt=" +
                       std::to_string(random.pick(std::array<int, 5>{443, 8443, 80, 22, 3389})) +
                       " proto=" + std::string(random.pick(protocols)) +
                       " out=" + std::to_string(megabytes * 1'000'000 + random.between(0, 999'999)) +
                       " dvchost=dt-master.corp.example shost=" + host + " suser=" + user + " request=https://" + domain +
                       "/api/v2/upload?id\\=" + std::to_string(id) + "&token\\=" + uuid(random).substr(0, 13) +
                       " act=Alert cs1Label=Model cs1=" + model +
                       " cs2Label=BreachURL cs2=https://dt-master.corp.example/#modelbreach/" + std::to_string(id) +
                       " cs3Label=DeviceLabel cs3=" + std::string(random.pick(labels)) + " cs4Label=Tags cs4=" +
                       std::string(random.pick(tags)) + " cn1Label=BreachScore cn1=" + std::to_string(score) +
                       " cn2Label=DeviceID cn2=" + std::to_string(device) + " cn3Label=ThreatScore cn3=" +
                       std::to_string(random.between(1, 100)) + " deviceExternalId=" + uuid(random);
    return line;
}

std::string system_status(Random& random) {
    const When at = when(random);
    const auto id = random.between(100'000, 9'999'999);
    return at.syslog + "CEF:0|Darktrace|Enterprise Immune System|6.1|349|System/System|" +
           std::to_string(random.between(3, 7)) + "|externalId=" + std::to_string(id) + " rt=" + at.rt +
           " dvc=" + ip(random, true) + " dvchost=dt-probe-" + std::to_string(random.between(1, 40)) +
           ".corp.example message=" + std::string(random.pick(statuses)) +
           " darktraceUrl=https://dt-master.corp.example/#modelbreach/" + std::to_string(id);
}

std::string ai_analyst(Random& random) {
    const When at = when(random);
    const std::string incident(random.pick(incidents));
    std::string summary;
    const auto paragraphs = random.between(6, 30);
    for (std::uint64_t i = 0; i < paragraphs; ++i) {
        if (i != 0) summary += ' ';
        summary += random.pick(findings);
    }
    char location[48];
    std::snprintf(location, sizeof location, " long=%.4f lat=%.4f", static_cast<double>(random.between(0, 3600)) / 10 - 180,
                  static_cast<double>(random.between(0, 1700)) / 10 - 85);
    char host[40];
    std::snprintf(host, sizeof host, "ws-%04u.corp.example.com", static_cast<unsigned>(random.between(0, 9999)));
    return at.syslog + "CEF:0|Darktrace|AI Analyst|6.1|" + uuid(random).substr(0, 10) + "|" + incident + "|" +
           std::to_string(random.between(5, 10)) + "|rt=" + at.rt + " dvc=" + ip(random, true) + " dvchost=" + host +
           " groupingId=" + uuid(random).substr(0, 8) + " groupByActivity=" + std::to_string(random.between(0, 1)) +
           " message=" + summary + " darktraceUrl=https://dt-master.corp.example/#aiincident/" + uuid(random) +
           location;
}

}  // namespace

std::vector<std::string> make_template_events(std::uint64_t seed, std::size_t count) {
    Random random(seed);
    std::vector<std::string> events;
    events.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        const auto roll = random.between(0, 99);
        if (roll < 75) events.push_back(model_breach(random));
        else if (roll < 92) events.push_back(system_status(random));
        else events.push_back(ai_analyst(random));
    }
    return events;
}

}  // namespace cefd::loadgen
