// Must not compile: a parameter type with heap storage and no wire_codec cannot cross TCP.
// Expected diagnostic (CTest checks it): what to write, and where the README explains it.
#include "../archetypes/archetypes.hpp"

#include <flotilla/transport/tcp/server_transport.hpp>

int main() {
  flotilla::tcp::server_transport<archetypes::heap_parameters> transport({});
  (void)transport;
}
