#pragma once
// The exceptions Flotilla throws. One channel: every error is one of these types, each derived
// from the standard exception it refines, with a message saying what was wrong and what was
// expected. (Allocation failures stay std::bad_alloc.)

#include <stdexcept>
#include <string>
#include <system_error>

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

/// A call out of order, such as asking a rule for its result before it started a round.
class usage_error : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// Bytes that do not decode to what they claim to be (truncated, wrong version, absurd sizes).
class decode_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Data files that are missing or malformed, or data that does not fit its model.
class data_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A learner cannot do the task it was given (no evaluation data, no data to train on, a task
/// kind it does not know). Transports turn it into a failure of that learner alone.
class task_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A peer broke the wire protocol: a malformed frame, a wrong version, an unexpected message.
/// The connection it came on is closed; nothing else is affected.
class protocol_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An MPI call failed, or another rank of the job broke the MPI transport's protocol. The job
/// cannot go on: MPI ends a job that loses a rank (resume it from a checkpoint).
class mpi_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A cryptographic primitive (OpenSSL) failed where it should not.
class security_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A file could not be read or written; code() holds the system's reason.
class file_error : public std::system_error {
 public:
  using std::system_error::system_error;
};

}  // namespace flotilla
