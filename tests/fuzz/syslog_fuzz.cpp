// Fuzz target: the syslog envelope (stages/parse/syslog.h). Every field must be a view into the
// input line, PRI in range, and the message must be what is left after the header.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "stages/parse/syslog.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using cefd::fuzz::inside;
    const std::string_view line(reinterpret_cast<const char*>(data), size);
    const cefd::SyslogMessage m = cefd::parse_syslog(line);
    CEFD_FUZZ_CHECK(m.pri >= -1 && m.pri <= 191, line);
    CEFD_FUZZ_CHECK(inside(m.timestamp, line), line);
    CEFD_FUZZ_CHECK(inside(m.hostname, line), line);
    CEFD_FUZZ_CHECK(inside(m.app_name, line), line);
    CEFD_FUZZ_CHECK(inside(m.procid, line), line);
    CEFD_FUZZ_CHECK(inside(m.msgid, line), line);
    CEFD_FUZZ_CHECK(inside(m.structured_data, line), line);
    CEFD_FUZZ_CHECK(inside(m.message, line), line);
    CEFD_FUZZ_CHECK(inside(m.after_timestamp, line), line);
    CEFD_FUZZ_CHECK(m.hostname != "-", line);  // NILVALUE is reported as empty
    if (m.form == cefd::SyslogForm::none) CEFD_FUZZ_CHECK(m.hostname.empty() && m.timestamp.empty(), line);
    // The message is a suffix of the line, up to the trailing CR/LF/NUL that are removed.
    if (!m.message.empty()) {
        const std::size_t end = static_cast<std::size_t>(m.message.data() - line.data()) + m.message.size();
        for (std::size_t i = end; i < line.size(); ++i)
            CEFD_FUZZ_CHECK(line[i] == '\n' || line[i] == '\r' || line[i] == '\0', line);
        CEFD_FUZZ_CHECK(m.message.data() >= m.after_timestamp.data() || m.form == cefd::SyslogForm::none, line);
    }
    return 0;
}
