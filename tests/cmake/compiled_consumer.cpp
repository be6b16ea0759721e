// A program built against flotilla::compiled: it federates the MLP for one round, so it links
// against the coordinator, learner, transport and model instantiated in the library, and it uses
// the library's non-template code (CRC32C, the history's CSV).
#include <flotilla/flotilla.hpp>
#include <flotilla/models.hpp>
#include <flotilla/detail/crc32c.hpp>

#include <cstdio>
#include <vector>

int main() {
#ifndef FLOTILLA_SEPARATE_COMPILATION
  std::puts("not built in the compiled mode");
  return 1;
#endif
  using model = flotilla::mlp<float>;
  flotilla::random_engine engine(3);
  model::data_type data{.features = Eigen::MatrixXf::Random(4, 16), .labels = {}, .classes = 3};
  for (int i = 0; i < 16; ++i) data.labels.push_back(i % 3);
  std::vector<flotilla::learner<model, model::data_type>> learners;
  for (std::size_t i = 0; i < 2; ++i) learners.emplace_back(i, model({4, 8, 3}), data);
  flotilla::in_memory_transport transport(std::move(learners));
  flotilla::coordinator federation(transport, model({4, 8, 3}).parameters(), {.quorum = 2});
  const auto& record = federation.run_round();
  const char check[] = "123456789";
  const auto crc = flotilla::detail::crc32c(std::as_bytes(std::span(check, 9)));
  std::printf("compiled round %s, participants %zu, crc32c %08X, csv %s\n", flotilla::to_string(record.status),
              record.participants.size(), crc, flotilla::to_csv(federation.history()).empty() ? "empty" : "written");
  return record.status == flotilla::round_status::aggregated ? 0 : 1;
}
