// Must not compile: checkpoints of a coordinator whose parameter type has no wire codec (before
// 0.3 the checkpoint_path was silently ignored). Expected diagnostic (CTest checks it): the
// unsatisfied 'WireCodable' constraint.
#include "../archetypes/archetypes.hpp"

#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/persistence/checkpoint.hpp>

int main() {
  archetypes::transport nobody;
  flotilla::coordinator<archetypes::transport, archetypes::aggregator> federation(nobody, archetypes::parameter_set{});
  flotilla::checkpoint_every_round(federation, "run.checkpoint");
}
