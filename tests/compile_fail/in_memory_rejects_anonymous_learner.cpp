// Must not compile: a learner without an id. Expected diagnostic (CTest checks it): Learner
// requirement 2.
#include "../archetypes/archetypes.hpp"

#include <flotilla/transport/in_memory.hpp>

int main() {
  std::vector<archetypes::anonymous_learner> learners(1);
  flotilla::in_memory_transport<archetypes::anonymous_learner> transport(std::move(learners));
  (void)transport;
}
