#pragma once
// The WireCodable contract: a parameter type that can cross a network or go into a file.

#include <concepts>

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
/// `parameters<Scalar>` is provided by wire/codec.hpp. For your own type, specialize
/// `flotilla::wire_codec` (see the README: "Your own parameter type over TCP"):
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

}  // namespace flotilla
