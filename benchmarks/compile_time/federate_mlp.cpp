// Compile-time subject: a program that includes the umbrella header and federates the MLP: a
// round runs, so the learners' training and the coordinator's round are compiled, not only
// declared.
#include <flotilla/flotilla.hpp>
#include <flotilla/models.hpp>

#include <vector>

int main() {
  using model = flotilla::mlp<float>;
  std::vector<flotilla::learner<model, model::data_type>> learners;
  for (std::size_t i = 0; i < 2; ++i) learners.emplace_back(i, model({4, 8, 3}), model::data_type{});
  flotilla::in_memory_transport transport(std::move(learners));
  flotilla::coordinator federation(transport, model({4, 8, 3}).parameters());
  federation.run_round();
  const auto bytes = flotilla::encode(federation.global());
  return bytes.empty() ? 1 : 0;
}
