// Must not compile: a rule without merge() is not an Aggregator. Expected diagnostic (CTest
// checks it): Aggregator requirement 3, by number.
#include "../archetypes/archetypes.hpp"

#include <flotilla/coordinators/synchronous.hpp>

int main() {
  archetypes::transport nobody;
  flotilla::coordinator<archetypes::transport, archetypes::unmergeable_aggregator> federation(
      nobody, archetypes::parameter_set{});
  (void)federation;
}
