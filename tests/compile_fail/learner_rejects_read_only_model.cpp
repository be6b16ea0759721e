// Must not compile: a model whose parameters cannot be set. Expected diagnostic (CTest checks
// it): Model requirement 2.
#include "../archetypes/archetypes.hpp"

#include <flotilla/round/learner.hpp>

int main() {
  flotilla::learner<archetypes::read_only_model, archetypes::dataset> learner(1, {}, {});
  (void)learner;
}
