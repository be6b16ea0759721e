#pragma once
// Where both sides of the TCP transport send their log lines.

#include <cstdio>
#include <functional>
#include <string>

namespace flotilla::tcp {

/// Receives the transport's log lines: connections, refusals, and why each connection closed.
/// Text that came from a peer is escaped before it gets here, so a line is always one line.
using log_function = std::function<void(const std::string&)>;

/// Writes log lines to standard error.
inline void log_to_stderr(const std::string& line) { std::fprintf(stderr, "flotilla tcp: %s\n", line.c_str()); }

}  // namespace flotilla::tcp
