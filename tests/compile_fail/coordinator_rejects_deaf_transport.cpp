// Must not compile: a transport that cannot receive. Expected diagnostic (CTest checks it):
// Transport requirement 4.
#include "../archetypes/archetypes.hpp"

#include <flotilla/coordinators/synchronous.hpp>

int main() {
  archetypes::deaf_transport nobody;
  flotilla::coordinator<archetypes::deaf_transport, archetypes::aggregator> federation(nobody, archetypes::parameter_set{});
  (void)federation;
}
