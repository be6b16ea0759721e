#pragma once
// A coordinator's state between rounds, as a view to save and as values to restore: what a
// checkpoint holds (persistence/checkpoint.hpp writes and reads it).

#include <cstdint>
#include <memory>

#include "flotilla/random.hpp"
#include "flotilla/round/history.hpp"

namespace flotilla {

/// Everything needed to continue a run, read in place (no copies): the last round's number,
/// the selection generator, the global parameters, the rule (and so its state between rounds)
/// and the history.
template <class P, class Rule>
struct coordinator_snapshot {
  std::uint64_t round;
  const random_engine& engine;
  const P& global;
  const Rule& rule;
  const flotilla::history& history;
};

/// The same state as values, to restore a coordinator from.
template <class P, class Rule>
struct coordinator_state {
  std::uint64_t round = 0;
  random_engine engine{};
  std::shared_ptr<const P> global{};
  Rule rule{};
  flotilla::history history{};
};

}  // namespace flotilla
