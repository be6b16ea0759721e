#pragma once
// The CheckpointableRule contract: an aggregation rule whose state outlives a round.

#include "flotilla/fwd.hpp"

namespace flotilla {

/// @brief A rule that carries state from round to round (a server optimizer's moments) and says
/// how to write and read it, so a checkpoint resumes it exactly.
///
/// Requirements, each with its reason:
///  1. `rule.save_state(out)` writes the state to a `wire_writer`: checkpoints hold it.
///  2. `target.load_state(in)` replaces the state with one read from a `wire_reader`, throwing
///     decode_error on malformed input and changing nothing then.
///
/// Rules that forget everything at `start()` (mean, the robust rules) need neither: a checkpoint
/// records that they keep no state.
/// @code
/// struct momentum_rule {  // ... the Aggregator members, then:
///   void save_state(flotilla::wire_writer& out) const;
///   void load_state(flotilla::wire_reader& in);
/// };
/// @endcode
template <class Rule>
concept CheckpointableRule = requires(const Rule& rule, Rule& target, wire_writer& out, wire_reader& in) {
  rule.save_state(out);
  target.load_state(in);
};

}  // namespace flotilla
