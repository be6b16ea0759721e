#pragma once
// Small text helpers for error messages and exports, kept out of the user-facing API.

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>  // std::snprintf for JSON escapes
#include <string>
#include <string_view>
#include <vector>

namespace flotilla::detail {

/// 1204 -> "1,204": large counts in messages are read by people.
inline std::string grouped(std::uint64_t value) {
  std::string digits = std::to_string(value);
  std::string out;
  out.reserve(digits.size() + digits.size() / 3);
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

/// Text from a peer made safe to log or record: control characters and backslashes escaped (so
/// it cannot end a line and forge another), and at most `limit` bytes kept.
inline std::string printable(std::string_view text, std::size_t limit = 256) {
  constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (out.size() >= limit) return out + "...(" + std::to_string(text.size() - i) + " more bytes)";
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += char(c);
    }
  }
  return out;
}


inline std::string number(double value) {
  if (!std::isfinite(value)) return std::isnan(value) ? "nan" : (value > 0 ? "inf" : "-inf");
  char buffer[64];
  auto end = std::to_chars(buffer, buffer + sizeof buffer, value).ptr;
  return std::string(buffer, end);
}

inline std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

inline std::string json_number(double value) { return std::isfinite(value) ? number(value) : "null"; }

inline std::string csv_field(std::string_view text) {
  if (text.find_first_of(",\"\n") == std::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

inline std::string join_ids(const std::vector<std::uint64_t>& ids, char separator) {
  std::string out;
  for (auto id : ids) {
    if (!out.empty()) out += separator;
    out += std::to_string(id);
  }
  return out;
}

}  // namespace flotilla::detail
