#include <flotilla/persistence/checkpoint.hpp>

#include <flotilla/aggregators/server_optimizer.hpp>
#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/round/learner.hpp>
#include <flotilla/models/linear_regression.hpp>
#include <flotilla/transport/in_memory.hpp>

#include <doctest/doctest.h>

#include <cstdio>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {
using linear = flotilla::linear_regression<double>;
using params = linear::parameters_type;
using rule = flotilla::fedavgm<params, flotilla::deterministic_weighted_mean<params>>;

linear::data_type line_data(std::size_t examples, std::uint64_t seed) {
  flotilla::random_engine engine(seed);
  linear::data_type data{Eigen::MatrixXd(2, static_cast<Eigen::Index>(examples)),
                         Eigen::VectorXd(static_cast<Eigen::Index>(examples))};
  for (Eigen::Index i = 0; i < data.features.cols(); ++i) {
    data.features(0, i) = flotilla::standard_normal(engine);
    data.features(1, i) = flotilla::standard_normal(engine);
    data.targets(i) = 3 * data.features(0, i) - 2 * data.features(1, i) + 1 + 0.1 * flotilla::standard_normal(engine);
  }
  return data;
}

// Eight learners with minibatch SGD (shuffled by each round's seed), half of them selected each
// round, FedAvgM (state between rounds) over the deterministic mean: four worker threads reply
// in whatever order they finish, and the sums still come out the same in every run.
struct federation_setup {
  flotilla::in_memory_transport<flotilla::learner<linear, linear::data_type>> transport;
  flotilla::coordinator<decltype(transport), rule> coordinator;

  explicit federation_setup(std::filesystem::path checkpoint = {}, std::size_t workers = 4)
      : transport(learners(), workers),
        coordinator(transport, linear(2).parameters(), {.selection = {.fraction = 0.5}, .quorum = 4, .seed = 17},
                    rule({.learning_rate = 1.0, .momentum = 0.5})) {
    if (!checkpoint.empty()) flotilla::checkpoint_every_round(coordinator, std::move(checkpoint));
  }

  static std::vector<flotilla::learner<linear, linear::data_type>> learners() {
    std::vector<flotilla::learner<linear, linear::data_type>> all;
    for (std::size_t i = 0; i < 8; ++i)
      all.emplace_back(i, linear(2, {.learning_rate = 0.05, .epochs = 1, .batch_size = 8}), line_data(30, 40 + i));
    return all;
  }
};

struct scratch_file {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("flotilla-checkpoint-" + std::to_string(::getpid()) + ".bin");
  ~scratch_file() {
    std::filesystem::remove(path);
    std::filesystem::remove(std::filesystem::path(path).concat(".tmp"));
  }
};
}  // namespace

TEST_CASE("a run interrupted after round k and resumed ends bit for bit as an uninterrupted one") {
  federation_setup uninterrupted;
  uninterrupted.coordinator.run(flotilla::stop::after_rounds(8));

  scratch_file file;
  {
    federation_setup first_half(file.path);
    first_half.coordinator.run(flotilla::stop::after_rounds(3));
    CHECK(std::filesystem::exists(file.path));
    CHECK_FALSE(std::filesystem::exists(std::filesystem::path(file.path).concat(".tmp")));
  }  // the process "ends" here
  federation_setup resumed(file.path);
  flotilla::load_checkpoint(resumed.coordinator, file.path);
  CHECK(resumed.coordinator.rounds_run() == 3);
  CHECK(resumed.coordinator.history().rounds.size() == 3);
  resumed.coordinator.run(flotilla::stop::after_rounds(8));

  CHECK(resumed.coordinator.global() == uninterrupted.coordinator.global());  // every bit
  CHECK(flotilla::l2_norm(resumed.coordinator.global()) > 1.0);  // it trained: the check means something
  REQUIRE(resumed.coordinator.history().rounds.size() == 8);
  for (std::size_t r = 0; r < 8; ++r) {
    CAPTURE(r);
    CHECK(resumed.coordinator.history().rounds[r].selected == uninterrupted.coordinator.history().rounds[r].selected);
    CHECK(resumed.coordinator.history().rounds[r].fit_metrics ==
          uninterrupted.coordinator.history().rounds[r].fit_metrics);
  }
}

TEST_CASE("one worker thread and four, replying in different orders, end bit for bit equal") {
  federation_setup one({}, 1), four({}, 4);
  one.coordinator.run(flotilla::stop::after_rounds(6));
  four.coordinator.run(flotilla::stop::after_rounds(6));
  CHECK(four.coordinator.global() == one.coordinator.global());  // every bit
  CHECK(flotilla::l2_norm(four.coordinator.global()) > 1.0);
  for (std::size_t r = 0; r < 6; ++r) {
    CAPTURE(r);
    CHECK(four.coordinator.history().rounds[r].fit_metrics == one.coordinator.history().rounds[r].fit_metrics);
  }
}

TEST_CASE("a checkpoint resumes only under the kind of rule that wrote it") {
  scratch_file file;
  {
    federation_setup writer(file.path);
    writer.coordinator.run(flotilla::stop::after_rounds(2));
  }
  flotilla::in_memory_transport transport(federation_setup::learners(), 1);
  flotilla::coordinator<decltype(transport), flotilla::weighted_mean<params>> plain(transport, linear(2).parameters());
  const std::string expected =
      "checkpoint " + file.path.string() + ": it holds the state of a rule this coordinator's rule does not keep";
  CHECK_THROWS_WITH_AS(flotilla::load_checkpoint(plain, file.path), expected.c_str(), flotilla::decode_error);
  flotilla::save_checkpoint(plain, file.path);  // FedAvg keeps nothing between rounds
  federation_setup momentum;
  const std::string missing = "checkpoint " + file.path.string() + ": it holds no state for this coordinator's rule";
  CHECK_THROWS_WITH_AS(flotilla::load_checkpoint(momentum.coordinator, file.path), missing.c_str(), flotilla::decode_error);
}

TEST_CASE("a checkpoint of format version 2 (Flotilla 0.3) still loads: checkpoints hold no settings") {
  scratch_file file;
  {
    federation_setup writer(file.path);
    writer.coordinator.run(flotilla::stop::after_rounds(1));
  }
  auto bytes = flotilla::read_file(file.path);
  REQUIRE(bytes.size() > 7);
  CHECK(bytes[5] == std::byte{5});  // after cereal's endianness byte and the 4-byte magic: the version
  bytes[5] = std::byte{2};
  flotilla::write_file_atomically(file.path, bytes);
  federation_setup setup;
  flotilla::load_checkpoint(setup.coordinator, file.path);
  CHECK(setup.coordinator.rounds_run() == 1);
}

TEST_CASE("bad checkpoints are refused with the file named, and nothing changes") {
  scratch_file file;
  federation_setup setup;
  SUBCASE("a missing file") {
    CHECK_THROWS_AS(flotilla::load_checkpoint(setup.coordinator, file.path), flotilla::file_error);
  }
  SUBCASE("a truncated file") {
    {
      federation_setup writer(file.path);
      writer.coordinator.run(flotilla::stop::after_rounds(1));
    }
    auto bytes = flotilla::read_file(file.path);
    bytes.resize(bytes.size() / 2);
    flotilla::write_file_atomically(file.path, bytes);
    const std::string expected = "checkpoint " + file.path.string() + ": truncated input";
    CHECK_THROWS_WITH_AS(flotilla::load_checkpoint(setup.coordinator, file.path), doctest::Contains(expected.c_str()),
                         flotilla::decode_error);
  }
  SUBCASE("a checkpoint of an older format version") {
    {
      federation_setup writer(file.path);
      writer.coordinator.run(flotilla::stop::after_rounds(1));
    }
    auto bytes = flotilla::read_file(file.path);
    REQUIRE(bytes.size() > 7);
    bytes[5] = std::byte{1};  // after cereal's endianness byte and the 4-byte magic: the version
    bytes[6] = std::byte{0};
    flotilla::write_file_atomically(file.path, bytes);
    CHECK_THROWS_WITH_AS(flotilla::load_checkpoint(setup.coordinator, file.path),
                         doctest::Contains("message has format version 1; this build reads version 2 to 5"),
                         flotilla::decode_error);
  }
  SUBCASE("another kind of file") {
    const params other(flotilla::tensor_layout({{"w", {3}}}));
    const auto bytes = flotilla::encode(other);
    flotilla::write_file_atomically(file.path, bytes);
    CHECK_THROWS_WITH_AS(flotilla::load_checkpoint(setup.coordinator, file.path),
                         doctest::Contains("message holds content type 1; expected 4"), flotilla::decode_error);
  }
  SUBCASE("a checkpoint of another model") {
    {
      flotilla::in_memory_transport transport(federation_setup::learners(), 1);
      flotilla::coordinator<decltype(transport), rule> wider(transport, linear(5).parameters(), {.quorum = 1});
      flotilla::save_checkpoint(wider, file.path);
    }
    CHECK_THROWS_WITH_AS(flotilla::load_checkpoint(setup.coordinator, file.path),
                         "the checkpoint's model has 6 parameters; this coordinator's model has 3",
                         flotilla::layout_error);
  }
  CHECK(setup.coordinator.rounds_run() == 0);
  CHECK(setup.coordinator.history().rounds.empty());
  CHECK(setup.coordinator.global() == linear(2).parameters());
}

TEST_CASE("files are replaced atomically: the temporary file never remains") {
  scratch_file file;
  const std::vector<std::byte> first(10, std::byte{1}), second(3, std::byte{2});
  flotilla::write_file_atomically(file.path, first);
  flotilla::write_file_atomically(file.path, second);
  const auto read = flotilla::read_file(file.path);
  CHECK(std::vector<std::byte>(read.begin(), read.end()) == second);
  CHECK_FALSE(std::filesystem::exists(std::filesystem::path(file.path).concat(".tmp")));
  CHECK_THROWS_AS(flotilla::write_file_atomically("/nonexistent-directory/checkpoint.bin", first), flotilla::file_error);
}
