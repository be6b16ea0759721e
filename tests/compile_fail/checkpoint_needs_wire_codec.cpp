// Must not compile: checkpoints of a coordinator whose parameter type has no wire codec (before
// 0.3 the checkpoint_path was silently ignored). Expected diagnostic (CTest checks it): the
// unsatisfied 'WireCodable' constraint.
#include "../archetypes/archetypes.hpp"

#include <flotilla/aggregators/mean.hpp>
#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/persistence/checkpoint.hpp>

int main() {
  using transport = archetypes::transport_of<archetypes::heap_parameters>;
  transport nobody;
  flotilla::coordinator<transport, flotilla::mean<archetypes::heap_parameters>> federation(nobody, archetypes::heap_parameters{});
  flotilla::checkpoint_every_round(federation, "run.checkpoint");
}
