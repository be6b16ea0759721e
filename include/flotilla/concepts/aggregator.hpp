#pragma once
// The Aggregator contract: the rule that folds one round's updates into new global parameters.
// (The role that runs rounds is the coordinator; an Aggregator only does the arithmetic.)

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>

#include "flotilla/concepts/parameter_set.hpp"
#include "flotilla/fwd.hpp"

namespace flotilla {

/// @brief A streaming rule that turns one round's updates into new global parameters.
///
/// Requirements, each with its reason:
///  1. `a.start(global)` begins a round from the current global parameters: rules such as
///     server optimizers need them, and the accumulator takes their layout.
///  2. `a.accept(update, examples)` folds one learner's parameters, with the number of
///     examples it trained on, into the running state as soon as it arrives, so the
///     coordinator never holds more than one update at a time.
///  3. `a.merge(other)` folds another rule's partial state of the same round into this one, so
///     an edge aggregator's result can feed a root one (hierarchical FL).
///  4. `ca.accepted()` says how many updates were folded in, including merged ones.
///  5. `ca.result()` returns the new global parameters; it is called only when `accepted() > 0`.
///
/// Semantic rules the compiler cannot check:
///  - The result does not depend on the order in which updates arrived, nor on how they were
///    split between merged partial states (up to floating-point rounding).
///  - `start` forgets everything accepted in an earlier round.
///  - The rule trusts its input: the coordinator has already checked layout, finiteness and
///    example counts.
///
/// A minimal conforming type (keeps the last update it saw):
/// @code
/// template <flotilla::ParameterSet P>
/// struct keep_last {
///   P last; std::size_t n = 0;
///   void start(const P& global) { last = global; n = 0; }
///   void accept(const P& update, std::int64_t) { last = update; ++n; }
///   void merge(const keep_last& other) { if (other.n) last = other.last; n += other.n; }
///   std::size_t accepted() const { return n; }
///   P result() const { return last; }
/// };
/// @endcode
template <class A, class P>
concept Aggregator = ParameterSet<P> && std::movable<A> &&
    requires(A& a, const A& ca, const P& parameters, std::int64_t examples) {
      a.start(parameters);
      a.accept(parameters, examples);
      a.merge(ca);
      { ca.accepted() } -> std::convertible_to<std::size_t>;
      { ca.result() } -> std::same_as<P>;
    };

/// One update of a batch: parameters and the examples they were trained on.
template <ParameterSet P>
struct weighted_update {
  const P* parameters{};
  std::int64_t examples{};
};

/// @brief An Aggregator that can also fold several updates in one pass over its state.
///
/// When replies arrive faster than they are folded, the coordinator hands those already
/// waiting to `a.accept_batch(updates)` together: the rule reads its accumulator once per batch
/// instead of once per update. The result must equal accepting the updates one by one, in order.
template <class A, class P>
concept BatchAggregator = Aggregator<A, P> && requires(A& a, std::span<const weighted_update<P>> updates) {
  a.accept_batch(updates);
};

/// One update of a batch as it may arrive coded: `*parameters`, plus, when `delta` is set, those
/// values decoded (a compressed reply: the learner's change to the parameters it was sent, and
/// `parameters` the coordinator's global parameters).
template <ParameterSet P>
struct coded_update {
  const P* parameters{};
  const compression::coded_values* delta{};
  std::int64_t examples{};
};

/// @brief An Aggregator that folds coded updates itself, decoding each a slice at a time into its
/// accumulator (the mean family), so a compressed reply is never expanded to a whole parameter
/// set. Any other rule is handed each coded update decoded. The result must equal accepting the
/// decoded updates one by one, in order.
template <class A, class P>
concept CodedAggregator = Aggregator<A, P> && requires(A& a, std::span<const coded_update<P>> updates) {
  a.accept_coded(updates);
};

/// @brief An Aggregator whose partial state of a round can travel: `ca.write_partial(out)` writes
/// what it has accepted so far, and `a.merge_partial(in)` folds such a state in as merge() would.
/// A process that hosts many learners (an MPI rank) folds their replies itself and sends one
/// partial state, not every update; other rules are sent each update.
template <class A, class P>
concept PartialAggregator = Aggregator<A, P> && requires(const A& ca, A& a, wire_writer& out, wire_reader& in) {
  ca.write_partial(out);
  a.merge_partial(in);
};

/// Whether rule `A` keeps every update of a round until `result()` (robust rules such as the
/// median or Krum), so that its memory grows with the number of learners. A rule says so with
/// `static constexpr bool gathers_all_updates = true;`; streaming rules need say nothing.
template <class A>
inline constexpr bool is_gathering_rule_v = [] {
  if constexpr (requires { A::gathers_all_updates; }) return bool(A::gathers_all_updates);
  else return false;
}();

/// Whether rule `A` weighs updates by the example counts learners report (FedAvg's weighted
/// mean and rules built on it). A rule says so with `static constexpr bool weighs_by_examples =
/// true;`. Differential privacy refuses such rules: a count is the learner's own word.
template <class A>
inline constexpr bool is_example_weighted_v = [] {
  if constexpr (requires { A::weighs_by_examples; }) return bool(A::weighs_by_examples);
  else return false;
}();

/// @brief A rule that screens each update before it is folded in: `a.screen(update)` returns
/// the reason to reject it, or nothing. The fit phase hands it to the door, so a rejected reply
/// is recorded in the history with that reason and never reaches `accept`.
template <class A, class P>
concept ScreeningAggregator = Aggregator<A, P> && requires(const A& a, const P& update) {
  { a.screen(update) } -> std::same_as<std::optional<std::string>>;
};

/// @brief A rule that reports figures about its round (a clip norm, the privacy spent):
/// `a.round_metrics()` is added to the round's central metrics after the fit phase.
template <class A, class P>
concept ReportingAggregator = Aggregator<A, P> && requires(const A& a) {
  { a.round_metrics() } -> std::convertible_to<std::map<std::string, double>>;
};

namespace detail {
// See explain_parameter_set: one error naming the first unmet requirement.
template <class A, class P>
consteval bool explain_aggregator() {
  if constexpr (Aggregator<A, P>) return true;
  else if constexpr (!ParameterSet<P>) return explain_parameter_set<P>();
  else if constexpr (!std::movable<A>)
    static_assert(unmet_requirement<A>, "Aggregator: the rule must be movable; the coordinator keeps it by value");
  else if constexpr (!requires(A& a, const P& p) { a.start(p); })
    static_assert(unmet_requirement<A>, "Aggregator requirement 1: a.start(global) is missing for this parameter type");
  else if constexpr (!requires(A& a, const P& p, std::int64_t examples) { a.accept(p, examples); })
    static_assert(unmet_requirement<A>, "Aggregator requirement 2: a.accept(update, examples) is missing for this parameter type");
  else if constexpr (!requires(A& a, const A& other) { a.merge(other); })
    static_assert(unmet_requirement<A>, "Aggregator requirement 3: a.merge(other) is missing; it folds another rule's partial state in");
  else if constexpr (!requires(const A& a) { { a.accepted() } -> std::convertible_to<std::size_t>; })
    static_assert(unmet_requirement<A>, "Aggregator requirement 4: ca.accepted() on a const rule must return a count");
  else
    static_assert(unmet_requirement<A>, "Aggregator requirement 5: ca.result() on a const rule must return the parameter type");
  return false;
}
}  // namespace detail

}  // namespace flotilla
