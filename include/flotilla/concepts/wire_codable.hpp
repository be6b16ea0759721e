#pragma once
// The WireCodable contract: a parameter type that can cross a network or go into a file.

#include <concepts>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "flotilla/concepts/parameter_set.hpp"
#include "flotilla/fwd.hpp"

namespace flotilla {

/// @brief A `ParameterSet` with a `wire_codec`: what network transports and checkpoints need.
///
/// Requirements, each with its reason:
///  1. `wire_codec<P>::write(out, p)` appends `p` to a `wire_writer`: tasks, replies and
///     checkpoints carry it.
///  2. `wire_codec<P>::read(in)` returns a `P` read from a `wire_reader`, throwing decode_error
///     on malformed input: every byte from the network is checked before it is trusted.
///
/// Semantic rules the compiler cannot check:
///  - `read` of what `write` wrote gives an equal `P` (same layout, same values bit for bit).
///  - `read` never allocates more than the reader's limits allow (read counts through
///    `wire_reader::read_count`), so a hostile length cannot exhaust memory.
///  - A type that uses `wire_reader::read_final_block` keeps its values in heap storage that
///    stays put when the object is moved (the block may be filled in place after decoding).
///
/// wire/codec.hpp provides the codec of `parameters<Scalar>` and of every FixedShapeParameters
/// and CountedParameters type. For any other type, specialize `flotilla::wire_codec` (README: "Your own parameter type
/// over TCP"; examples/06_your_own_parameters.cpp):
/// @code
/// template <> struct flotilla::wire_codec<my_parameters> {
///   static void write(flotilla::wire_writer& out, const my_parameters& p);
///   static my_parameters read(flotilla::wire_reader& in);
/// };
/// @endcode
template <class P>
concept WireCodable = ParameterSet<P> && requires(wire_writer& out, wire_reader& in, const P& p) {
  wire_codec<P>::write(out, p);
  { wire_codec<P>::read(in) } -> std::same_as<P>;
};

/// @brief A parameter set whose type fixes its shape, which therefore needs no codec of its own.
///
/// Requirements: `P` is a `ParameterSet`, default-constructible (a default `P` has the one layout
/// and size every `P` has) and trivially copyable (its values live inline, e.g. in a `std::array`,
/// not on a heap its copies would share). The wire then carries only the scalars: a reader builds
/// a default `P` and fills its values, refusing a message whose scalar count differs.
template <class P>
concept FixedShapeParameters = ParameterSet<P> && std::default_initializable<P> && std::is_trivially_copyable_v<P>;

/// @brief A parameter set whose layout is its scalar count, made from that count: it too needs
/// no codec of its own.
///
/// Requirements: `p.layout()` returns an unsigned integer equal to `p.values().size()`, and
/// `P(count)` makes one holding `count` scalars (e.g. a vector inside). The wire carries the
/// scalars; a reader checks the count against its limits (the model in play) and the bytes left
/// before it constructs anything, so a peer cannot choose an allocation. Types that are also
/// FixedShapeParameters use that codec instead.
template <class P>
concept CountedParameters =
    ParameterSet<P> && !FixedShapeParameters<P> && std::constructible_from<P, std::size_t> &&
    std::unsigned_integral<std::remove_cvref_t<decltype(std::declval<const P&>().layout())>>;

namespace detail {
// See explain_parameter_set: one error naming the first unmet requirement.
template <class P>
consteval bool explain_wire_codable() {
  if constexpr (WireCodable<P>) return true;
  else if constexpr (!ParameterSet<P>) return explain_parameter_set<P>();
  else if constexpr (!requires { sizeof(wire_codec<P>); })
    static_assert(unmet_requirement<P>,
                  "WireCodable: P has no flotilla::wire_codec<P>. FixedShapeParameters (default-constructible, "
                  "values inline) and CountedParameters (layout() is the scalar count, P(count) makes one) get one "
                  "from <flotilla/wire/codec.hpp>; for any other, specialize flotilla::wire_codec<P> (README: "
                  "\"Your own parameter type over TCP\")");
  else if constexpr (!requires(wire_writer& out, const P& p) { wire_codec<P>::write(out, p); })
    static_assert(unmet_requirement<P>, "WireCodable requirement 1: static void wire_codec<P>::write(flotilla::wire_writer&, const P&) is missing");
  else
    static_assert(unmet_requirement<P>, "WireCodable requirement 2: static P wire_codec<P>::read(flotilla::wire_reader&) is missing or returns another type");
  return false;
}
}  // namespace detail

}  // namespace flotilla
