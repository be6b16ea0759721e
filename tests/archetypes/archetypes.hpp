#pragma once
// The smallest types that model each Flotilla concept, and near-misses that must not.

#include <flotilla/concepts/aggregator.hpp>
#include <flotilla/concepts/model.hpp>
#include <flotilla/concepts/parameter_set.hpp>
#include <flotilla/concepts/transport.hpp>
#include <flotilla/messages.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace archetypes {

struct parameter_set {
  using scalar_type = double;
  std::array<double, 2> data{};
  std::span<double> values() { return data; }
  std::span<const double> values() const { return data; }
  int layout() const { return 0; }
};

struct dataset {};

struct model {
  parameter_set p;
  const parameter_set& parameters() const { return p; }
  void set_parameters(const parameter_set& q) { p = q; }
};

struct trainable_model : model {
  flotilla::local_result fit(const dataset&, const flotilla::fit_config&) { return {1, {}}; }
};

struct evaluable_model : trainable_model {
  flotilla::local_result evaluate(const dataset&) const { return {1, {}}; }
};

struct aggregator {
  parameter_set last;
  std::size_t n = 0;
  void start(const parameter_set& global) { last = global; n = 0; }
  void accept(const parameter_set& update, std::int64_t) { last = update; ++n; }
  void merge(const aggregator& other) { n += other.n; }
  std::size_t accepted() const { return n; }
  parameter_set result() const { return last; }
};

template <class P>
struct transport_of {
  using parameters_type = P;
  std::vector<flotilla::learner_id> available() const { return {}; }
  void send(const flotilla::task<P>&, std::span<const flotilla::learner_id>) {}
  std::optional<flotilla::message<P>> receive(flotilla::deadline_clock::time_point) { return {}; }
};
using transport = transport_of<parameter_set>;

// Near-misses, one requirement broken each.
struct integer_parameters {  // scalars are not floating point
  using scalar_type = int;
  std::array<int, 2> data{};
  std::span<int> values() { return data; }
  std::span<const int> values() const { return data; }
  int layout() const { return 0; }
};

struct unlaid_parameters {  // no layout to compare
  using scalar_type = double;
  std::array<double, 2> data{};
  std::span<double> values() { return data; }
  std::span<const double> values() const { return data; }
};

struct read_only_model {  // parameters cannot be set
  parameter_set p;
  const parameter_set& parameters() const { return p; }
};

struct unmergeable_aggregator {  // cannot fold partial results: no hierarchical FL
  void start(const parameter_set&) {}
  void accept(const parameter_set&, std::int64_t) {}
  std::size_t accepted() const { return 0; }
  parameter_set result() const { return {}; }
};

struct deaf_transport {  // cannot receive replies
  using parameters_type = parameter_set;
  std::vector<flotilla::learner_id> available() const { return {}; }
  void send(const flotilla::task<parameter_set>&, std::span<const flotilla::learner_id>) {}
};

struct vector_valued_parameters {  // values() returns a vector, not a span
  using scalar_type = double;
  std::vector<double> data = std::vector<double>(2);
  std::vector<double> values() const { return data; }
  int layout() const { return 0; }
};

struct model_of_vector_valued_parameters {  // a model whose parameters miss ParameterSet
  vector_valued_parameters p;
  const vector_valued_parameters& parameters() const { return p; }
  void set_parameters(const vector_valued_parameters& q) { p = q; }
  flotilla::local_result fit(const dataset&, const flotilla::fit_config&) { return {1, {}}; }
};

struct anonymous_learner {  // no id()
  using parameters_type = parameter_set;
  flotilla::reply<parameter_set> handle(const flotilla::task<parameter_set>&) { return {}; }
};

struct heap_parameters {  // a ParameterSet with heap storage: not FixedShapeParameters, no codec
  using scalar_type = float;
  std::vector<float> data = std::vector<float>(3);
  std::span<float> values() { return data; }
  std::span<const float> values() const { return data; }
  std::size_t layout() const { return data.size(); }
};

}  // namespace archetypes
