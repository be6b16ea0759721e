#pragma once
// The exceptions Flotilla throws. One channel: exceptions derived from the standard ones, each
// message saying what was wrong and what was expected.

#include <stdexcept>
#include <string>

namespace flotilla {

/// A setting or argument that cannot work (e.g. a quorum larger than the federation).
class configuration_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Two parameter sets that were expected to share a layout do not.
class layout_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Bytes that do not decode to what they claim to be (truncated, wrong version, absurd sizes).
class decode_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Data files that are missing or malformed.
class data_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace flotilla
