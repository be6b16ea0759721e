#pragma once
// The ParameterSet contract: what crosses the wire between learners and the coordinator.

#include <concepts>
#include <span>
#include <type_traits>
#include <utility>

namespace flotilla {

/// @brief A model's trainable state (weights and biases) as one contiguous block of scalars
/// plus a layout that says how those scalars are arranged.
///
/// Requirements, each with its reason:
///  1. `P::scalar_type` is a floating-point type: rules average and scale parameters.
///  2. `p.values()` returns `std::span<scalar_type>` and, on a const `P`,
///     `std::span<const scalar_type>` over all scalars in one contiguous block: every rule is
///     then one pass over memory, and serialization is one copy.
///  3. `p.layout()` returns a value that is equality comparable: the coordinator rejects an
///     update whose layout differs from the global parameters' before it is aggregated.
///  4. `P` is copyable: the coordinator keeps the global parameters and rules build results.
///
/// Semantic rules the compiler cannot check:
///  - Two parameter sets with equal layouts have `values()` of equal size, and the scalar at
///    index i means the same weight in both.
///  - A copy has an equal layout and equal values.
///
/// A minimal conforming type:
/// @code
/// struct my_parameters {
///   using scalar_type = double;
///   std::array<double, 3> data{};
///   std::span<double> values() { return data; }
///   std::span<const double> values() const { return data; }
///   int layout() const { return 3; }  // one fixed shape: any equality-comparable value works
/// };
/// @endcode
template <class P>
concept ParameterSet =
    std::copyable<P> && std::floating_point<typename P::scalar_type> &&
    requires(P& p, const P& cp) {
      { p.values() } -> std::same_as<std::span<typename P::scalar_type>>;
      { cp.values() } -> std::same_as<std::span<const typename P::scalar_type>>;
      { cp.layout() };
      requires std::equality_comparable<std::remove_cvref_t<decltype(cp.layout())>>;
    };

/// Tag for constructors that leave values indeterminate, for callers about to overwrite them all
/// (decoders, aggregation results): it saves a pass over a model-sized buffer. A ParameterSet
/// may offer `P(p.shared_layout(), for_overwrite)`; flotilla::parameters does.
struct for_overwrite_t {
  explicit for_overwrite_t() = default;
};
inline constexpr for_overwrite_t for_overwrite{};

/// A parameter set with `like`'s layout whose values the caller overwrites next: made without
/// reading `like`'s values when P offers the for_overwrite constructor, else a copy of `like`.
template <ParameterSet P>
[[nodiscard]] P make_for_overwrite(const P& like) {
  if constexpr (requires { P(like.shared_layout(), for_overwrite); }) return P(like.shared_layout(), for_overwrite);
  else return like;
}

/// True when two parameter sets can be combined element by element.
template <ParameterSet P>
[[nodiscard]] bool same_layout(const P& a, const P& b) {
  return a.values().size() == b.values().size() && a.layout() == b.layout();
}

namespace detail {
/// False for every type, so a static_assert fires only in the branch that names its requirement.
template <class...>
inline constexpr bool unmet_requirement = false;

/// The library's entry points call these explain_* checks, so a type that misses a contract gets
/// one error naming the first unmet requirement in the concept's own numbering, at the
/// compiler's default diagnostics depth.
template <class P>
consteval bool explain_parameter_set() {
  if constexpr (ParameterSet<P>) return true;
  else if constexpr (!requires { typename P::scalar_type; })
    static_assert(unmet_requirement<P>, "ParameterSet requirement 1: P::scalar_type is missing; name the floating-point type of the values");
  else if constexpr (!std::floating_point<typename P::scalar_type>)
    static_assert(unmet_requirement<P>, "ParameterSet requirement 1: P::scalar_type must be a floating-point type");
  else if constexpr (!requires(P& p) { { p.values() } -> std::same_as<std::span<typename P::scalar_type>>; })
    static_assert(unmet_requirement<P>, "ParameterSet requirement 2: p.values() must return std::span<scalar_type>");
  else if constexpr (!requires(const P& p) { { p.values() } -> std::same_as<std::span<const typename P::scalar_type>>; })
    static_assert(unmet_requirement<P>, "ParameterSet requirement 2: on a const P, values() must return std::span<const scalar_type>");
  else if constexpr (!requires(const P& p) { p.layout(); })
    static_assert(unmet_requirement<P>, "ParameterSet requirement 3: p.layout() is missing on a const P");
  else if constexpr (!std::equality_comparable<std::remove_cvref_t<decltype(std::declval<const P&>().layout())>>)
    static_assert(unmet_requirement<P>, "ParameterSet requirement 3: the type p.layout() returns must be equality comparable");
  else
    static_assert(unmet_requirement<P>, "ParameterSet requirement 4: P must be copyable");
  return false;
}
}  // namespace detail

}  // namespace flotilla
