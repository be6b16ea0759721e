// Compile-time subject: the same program as federate_mlp.cpp, including only the headers it uses
// (the coordinator, the learner, the in-memory transport, the MLP and the wire codec) instead of
// the umbrella: what a large build gains from including what it uses.
#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/models/mlp.hpp>
#include <flotilla/round/learner.hpp>
#include <flotilla/transport/in_memory.hpp>
#include <flotilla/wire/codec.hpp>

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
