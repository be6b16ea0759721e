#pragma once
// Small text helpers for error messages and exports, kept out of the user-facing API.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

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

}  // namespace flotilla::detail
