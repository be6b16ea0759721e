#pragma once
// The vocabulary every layer speaks: learner ids, task kinds, metrics, a round's configuration
// and a learner's result, the deadline clock, and the names of the wire codec's parts. Concept
// headers may include this and each other, nothing else of Flotilla.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "flotilla/errors.hpp"

namespace flotilla {

/// Identifies a learner for as long as the federation runs.
using learner_id = std::uint64_t;

/// What a learner is asked to do. The set is open: 1 and 2 are the classic round's fit and
/// evaluate, 3 to 15 are kept for Flotilla's own stages, and a round with stages of its own
/// names them with custom_task_kind(n), which any transport carries unchanged.
enum class task_kind : std::uint8_t { fit = 1, evaluate = 2 };

/// The first task kind left to users.
inline constexpr std::uint8_t first_custom_task_kind = 16;

/// The n-th task kind of a user-defined stage. @throws configuration_error unless n < 240.
[[nodiscard]] constexpr task_kind custom_task_kind(unsigned n) {
  if (n >= 256 - first_custom_task_kind)
    throw configuration_error("custom task kind " + std::to_string(n) + " is out of range; there are 240 (0 to 239)");
  return static_cast<task_kind>(first_custom_task_kind + n);
}

/// "fit", "evaluate", or "stage <n>" for any other kind.
[[nodiscard]] inline std::string to_string(task_kind kind) {
  if (kind == task_kind::fit) return "fit";
  if (kind == task_kind::evaluate) return "evaluate";
  return "stage " + std::to_string(static_cast<unsigned>(kind));
}

/// How a round draws its learners: a fixed number of them, or each one independently with the
/// same probability (Poisson sampling, the draw that differential privacy's accounting assumes).
enum class sampling : std::uint8_t { fixed_size, poisson };

/// Named scalar results such as "loss" or "accuracy"; ordered so exports are stable.
using metrics = std::map<std::string, double>;

/// One setting a coordinator gives a learner, or one property a learner reports: a number, an
/// integer or text.
using setting = std::variant<double, std::int64_t, std::string>;

/// Named settings or properties, ordered so encodings and exports are stable.
using settings = std::map<std::string, setting>;

/// The value named `key` in `values` as a `T`, or `fallback` when there is none. Integers read
/// as numbers too; text reads only as text. @throws task_error when the value has another type
/// (a learner cannot do a task whose settings it misreads).
template <class T>
[[nodiscard]] T setting_or(const settings& values, const std::string& key, T fallback) {
  const auto found = values.find(key);
  if (found == values.end()) return fallback;
  const auto& value = found->second;
  if constexpr (std::is_floating_point_v<T>) {
    if (const auto* number = std::get_if<double>(&value)) return static_cast<T>(*number);
    if (const auto* integer = std::get_if<std::int64_t>(&value)) return static_cast<T>(*integer);
    throw task_error("setting '" + key + "' is text; a number was expected");
  } else if constexpr (std::is_integral_v<T>) {
    if (const auto* integer = std::get_if<std::int64_t>(&value)) return static_cast<T>(*integer);
    throw task_error("setting '" + key + "' is not an integer");
  } else {
    static_assert(std::is_convertible_v<T, std::string>, "settings hold numbers, integers and text");
    if (const auto* text = std::get_if<std::string>(&value)) return *text;
    throw task_error("setting '" + key + "' is not text");
  }
}

/// What the coordinator tells a learner about one round of local work.
struct fit_config {
  std::uint64_t round = 0;      ///< the round this work belongs to (1-based)
  std::uint64_t seed = 0;       ///< per learner and round, for reproducible shuffling
  flotilla::settings values{};  ///< user settings, e.g. "epochs", "learning_rate", "optimizer"

  /// The number named `key` (an integer setting reads as one too), or `fallback` when the
  /// coordinator did not set it. @throws task_error when it is text.
  [[nodiscard]] double get(const std::string& key, double fallback) const { return setting_or(values, key, fallback); }
  /// The integer named `key`, or `fallback`. @throws task_error when it is a number or text.
  [[nodiscard]] std::int64_t get_integer(const std::string& key, std::int64_t fallback) const {
    return setting_or(values, key, fallback);
  }
  /// The text named `key`, or `fallback`. @throws task_error when it is a number.
  [[nodiscard]] std::string get_text(const std::string& key, std::string fallback) const {
    return setting_or(values, key, std::move(fallback));
  }
};

/// What a learner's local training or evaluation reports back.
struct local_result {
  /// Examples seen (training) or evaluated. Signed so that a buggy model's negative count
  /// reaches the coordinator's validation and is rejected there, not wrapped to a huge weight.
  std::int64_t examples = 0;
  flotilla::metrics metrics{};
};

/// The clock every deadline in Flotilla is measured on.
using deadline_clock = std::chrono::steady_clock;

// The messages of a round, defined in messages.hpp: a task out, a reply or a failure back.
template <class P>
struct task;
template <class P>
struct reply;
struct failure;
/// What a transport hands back for each task it delivered.
template <class P>
using message = std::variant<reply<P>, failure>;

// Values in a codec's form, defined in compression/codec.hpp; named here so contracts can mention them.
namespace compression {
struct coded_values;
}

// The wire codec's parts, defined in wire/codec.hpp; named here so contracts can mention them.
class wire_writer;
class wire_reader;
/// How a parameter type is written to and read from the wire: see concepts/wire_codable.hpp.
template <class P>
struct wire_codec;

}  // namespace flotilla
