// One federated job over MPI for the resume test (resume.sh): FedAvg over 24 learners, half of
// them each round, checkpointed after every round.
//   resume_job --rounds N --out FILE                  an uninterrupted run; final parameters to FILE
//   resume_job --rounds N --checkpoint C --die-in K   rank 1 dies when round K starts on it
//   resume_job --rounds N --checkpoint C --resume --expect FILE
//                                                     continues from C; exits 1 unless its final
//                                                     parameters are FILE's within rounding
#include <flotilla/transport/mpi/transport.hpp>

#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/persistence/checkpoint.hpp>
#include <flotilla/round/stopping.hpp>
#include <flotilla/transport/in_memory.hpp>
#include <flotilla/transport/mpi/environment.hpp>

#include "test_learner.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

using namespace mpi_test;

int main(int argc, char** argv) {
  flotilla::mpi::environment mpi(argc, argv);
  int rounds = 6;
  std::uint64_t die_in = 0;
  std::string checkpoint, out, expect;
  bool resume = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (flag == "--rounds") rounds = std::stoi(next());
    else if (flag == "--die-in") die_in = std::stoull(next());
    else if (flag == "--checkpoint") checkpoint = next();
    else if (flag == "--out") out = next();
    else if (flag == "--expect") expect = next();
    else if (flag == "--resume") resume = true;
  }
  const behaviour odd{.exit_in_round = mpi.rank() == 1 ? die_in : 0};
  flotilla::on_demand_transport<test_learner> local(flotilla::mpi::share(24, mpi.rank(), mpi.size()),
                                                    [&](learner_id id) { return test_learner(id, odd); }, 1);
  flotilla::mpi::transport transport(mpi.world(), local);
  if (!transport.coordinates()) {
    transport.serve(flotilla::weighted_mean<params>{});
    return 0;
  }
  flotilla::coordinator coordinator(transport, model(2).parameters(), {.selection = {.fraction = 0.5}, .seed = 21});
  if (resume) {
    flotilla::load_checkpoint(coordinator, checkpoint);
    std::cout << "resumed after round " << coordinator.rounds_run() << "\n";
  }
  if (!checkpoint.empty()) flotilla::checkpoint_every_round(coordinator, checkpoint);
  coordinator.run(flotilla::stop::after_rounds(static_cast<std::size_t>(rounds)));
  transport.finish();
  const auto& values = coordinator.global().values();
  if (!out.empty()) {
    std::ofstream file(out);
    for (double value : values) file << std::hexfloat << value << "\n";
  }
  if (expect.empty()) return 0;
  std::ifstream file(expect);
  std::vector<double> expected;
  for (std::string line; std::getline(file, line);) expected.push_back(std::strtod(line.c_str(), nullptr));
  if (expected.size() != values.size()) {
    std::cout << "the uninterrupted run has " << expected.size() << " parameters; this one " << values.size() << "\n";
    return 1;
  }
  for (std::size_t i = 0; i < values.size(); ++i)
    if (std::abs(values[i] - expected[i]) > 1e-12 * std::max(1.0, std::abs(expected[i]))) {
      std::printf("parameter %zu: %.17g after resuming, %.17g uninterrupted\n", i, values[i], expected[i]);
      return 1;
    }
  std::printf("resumed run ends where the uninterrupted one does: %zu parameters within 1e-12\n", values.size());
  return 0;
}
