#pragma once
// Small text helpers for error messages and exports, kept out of the user-facing API.

#include <cstdint>
#include <string>

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

}  // namespace flotilla::detail
