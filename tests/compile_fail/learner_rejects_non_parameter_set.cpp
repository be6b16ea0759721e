// Must not compile: a model whose values() returns a vector has no ParameterSet. Expected
// diagnostic (CTest checks it): the unmet requirement, by number, at the default depth.
#include "../archetypes/archetypes.hpp"

#include <flotilla/round/learner.hpp>

int main() {
  flotilla::learner<archetypes::model_of_vector_valued_parameters, archetypes::dataset> learner(1, {}, {});
  (void)learner;
}
