#include <flotilla/integrations/torch/model.hpp>

#include <flotilla/algorithms/privacy/learner.hpp>
#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/models/linear_regression.hpp>
#include <flotilla/round/learner.hpp>
#include <flotilla/round/stopping.hpp>
#include <flotilla/transport/in_memory.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

// The LibTorch adapter: the module's tensors as views of one flat buffer, bit for bit both ways;
// modules of another shape refused by tensor name; BatchNorm's buffers federated or kept local;
// a federated linear model in LibTorch ending where linear_regression does; FedProx and SCAFFOLD's
// hooks; the configuration errors.

namespace {

torch::nn::Sequential small_network() {
  torch::manual_seed(3);
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 2, 3)), torch::nn::BatchNorm2d(2),
                               torch::nn::Flatten(), torch::nn::Linear(2 * 4 * 4, 3));
}

std::vector<std::string> names_of(const flotilla::parameters<float>& p) {
  std::vector<std::string> names;
  for (const auto& tensor : p.layout().tensors()) names.push_back(tensor.name);
  return names;
}

bool same_bits(const torch::Tensor& tensor, const float* values) {
  const auto contiguous = tensor.contiguous();
  return std::memcmp(contiguous.data_ptr<float>(), values, std::size_t(tensor.numel()) * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("a module's tensors become views of one flat buffer: bit for bit both ways, nothing copied to read") {
  auto network = small_network();
  std::vector<torch::Tensor> before;  // the values the module was built with
  for (const auto& p : network->parameters()) before.push_back(p.detach().clone());
  flotilla::torch_model model(network);
  const auto& flat = model.parameters();
  CHECK(names_of(flat) == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias",
                                                   "1.running_mean", "1.running_var"});
  CHECK(flat.size() == 2 * 9 + 2 + 2 + 2 + 32 * 3 + 3 + 2 + 2);
  // Module to flat: the same bits, in the layout's order.
  std::size_t offset = 0;
  for (std::size_t i = 0; i < before.size(); ++i) {
    REQUIRE(same_bits(before[i], flat.values().data() + offset));
    offset += std::size_t(before[i].numel());
  }
  // The module's tensors are the buffer: writing one shows in parameters() without a call.
  {
    torch::NoGradGuard no_gradients;
    network->parameters()[0].fill_(0.25f);
  }
  CHECK(model.parameters().values()[0] == 0.25f);
  CHECK(network->parameters()[0].data_ptr<float>() == model.parameters().values().data());
  // Flat to module: set_parameters is one copy into the buffer the module reads.
  auto changed = model.parameters();
  for (std::size_t i = 0; i < changed.size(); ++i) changed.values()[i] = float(i) * 0.5f - 3.0f;
  model.set_parameters(changed);
  offset = 0;
  for (const auto& p : network->parameters()) {
    REQUIRE(same_bits(p, changed.values().data() + offset));
    offset += std::size_t(p.numel());
  }
  // A copy clones the module: its own buffer, the same values.
  auto copy = model;
  CHECK(copy.parameters() == model.parameters());
  CHECK(copy.parameters().values().data() != model.parameters().values().data());
  CHECK(copy.module()->parameters()[0].data_ptr<float>() == copy.parameters().values().data());
}

TEST_CASE("parameters of a differently shaped module are refused, naming the tensor") {
  torch::manual_seed(1);
  flotilla::torch_model narrow(torch::nn::Sequential(torch::nn::Linear(3, 2)));
  flotilla::torch_model wide(torch::nn::Sequential(torch::nn::Linear(4, 2)));
  const auto kept = narrow.parameters();
  CHECK_THROWS_WITH_AS(narrow.set_parameters(wide.parameters()),
                       "the parameters do not fit the torch module: their tensor 0 is '0.weight' [2, 4]; the module's is "
                       "'0.weight' [2, 3]",
                       flotilla::layout_error);
  flotilla::torch_model deeper(torch::nn::Sequential(torch::nn::Linear(3, 2), torch::nn::Linear(2, 1)));
  CHECK_THROWS_WITH_AS(narrow.set_parameters(deeper.parameters()),
                       "the parameters do not fit the torch module: their tensor 2 is '1.weight' [1, 2]; the module's is "
                       "missing",
                       flotilla::layout_error);
  CHECK(narrow.parameters() == kept);  // nothing changed
}

TEST_CASE("BatchNorm's running statistics travel with the parameters, or stay on the learner (FedBN)") {
  auto data = flotilla::torch_data{torch::randn({8, 1, 6, 6}), torch::randint(0, 3, {8}, torch::kInt64)};
  flotilla::torch_model federated(small_network(), {.sgd = {.learning_rate = 0.1, .epochs = 1, .batch_size = 4}});
  flotilla::torch_model local(small_network(), {.sgd = {.learning_rate = 0.1, .epochs = 1, .batch_size = 4},
                                                .buffers = flotilla::torch_buffers::local});
  CHECK(names_of(local.parameters()) == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"});
  // Training moves the running statistics; with buffers federated they are in parameters().
  const auto before = federated.parameters();
  (void)federated.fit(data, {.round = 1, .seed = 2});
  const auto mean = federated.parameters().vector("1.running_mean");
  const auto buffer = federated.module()->named_buffers()["1.running_mean"];
  CHECK(same_bits(buffer, mean.data()));
  CHECK_FALSE(federated.parameters().vector("1.running_mean")[0] == before.vector("1.running_mean")[0]);
  // Kept local: setting parameters leaves the learner's own statistics alone.
  (void)local.fit(data, {.round = 1, .seed = 2});
  const auto own = local.module()->named_buffers()["1.running_mean"].clone();
  local.set_parameters(local.parameters());
  CHECK(torch::equal(own, local.module()->named_buffers()["1.running_mean"]));
  // Integer buffers never travel: BatchNorm's batch count is not in either layout.
  for (const auto& name : names_of(federated.parameters())) CHECK(name.find("num_batches_tracked") == std::string::npos);
}

namespace {
using reference = flotilla::linear_regression<float>;

reference::data_type line_data(std::size_t examples, std::uint64_t seed) {
  flotilla::random_engine engine(seed);
  reference::data_type data{Eigen::MatrixXf(3, Eigen::Index(examples)), Eigen::VectorXf(Eigen::Index(examples))};
  for (Eigen::Index i = 0; i < data.features.cols(); ++i) {
    for (Eigen::Index f = 0; f < 3; ++f) data.features(f, i) = float(flotilla::standard_normal(engine));
    data.targets(i) = 2 * data.features(0, i) - data.features(1, i) + 0.5f * data.features(2, i) + 0.25f;
  }
  return data;
}
// The same examples as tensors: inputs [N, 3], targets [N, 1].
flotilla::torch_data as_tensors(const reference::data_type& data) {
  const auto n = data.features.cols();
  auto inputs = torch::empty({n, 3});
  auto targets = torch::empty({n, 1});
  for (Eigen::Index i = 0; i < n; ++i) {
    for (Eigen::Index f = 0; f < 3; ++f) inputs[i][f] = data.features(f, i);
    targets[i][0] = data.targets(i);
  }
  return {inputs, targets};
}
}  // namespace

TEST_CASE("a federated linear model in LibTorch ends where linear_regression does on the same data") {
  // Full-batch gradient descent, one step a round: both compute the same gradient of the mean
  // squared error, so FedAvg over 3 learners takes both to the same parameters.
  const flotilla::sgd_options full_batch{.learning_rate = 0.05, .epochs = 1, .batch_size = 0};
  std::vector<flotilla::learner<reference, reference::data_type>> plain;
  std::vector<flotilla::learner<flotilla::torch_model<torch::nn::Linear>, flotilla::torch_data>> torched;
  for (flotilla::learner_id id = 0; id < 3; ++id) {
    const auto data = line_data(20 + 10 * id, id + 1);
    plain.emplace_back(id, reference(3, full_batch), data);
    torch::nn::Linear linear(3, 1);
    {
      torch::NoGradGuard no_gradients;
      linear->weight.zero_();
      linear->bias.zero_();
    }
    torched.emplace_back(id, flotilla::torch_model(linear, {.sgd = full_batch}, flotilla::torch_sgd(), flotilla::torch_mse),
                         as_tensors(data));
  }
  const auto initial = torched.front().model().parameters();
  flotilla::in_memory_transport plain_transport(std::move(plain), 1);
  flotilla::in_memory_transport torch_transport(std::move(torched), 1);
  flotilla::coordinator expected(plain_transport, reference(3).parameters(), {.quorum = 3});
  flotilla::coordinator actual(torch_transport, initial, {.quorum = 3});
  expected.run(flotilla::stop::after_rounds(20));
  actual.run(flotilla::stop::after_rounds(20));
  // Layouts differ ("weight" [3] and "bias" [1] against "weight" [1, 3] and "bias" [1]); values
  // are in the same order.
  const auto want = expected.global().values(), got = actual.global().values();
  REQUIRE(got.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-4));
  CHECK(want[0] > 1.0f);  // it moved towards 2
}

TEST_CASE("FedProx pulls towards the round's start; SCAFFOLD's correction shifts every step") {
  const auto data = as_tensors(line_data(16, 7));
  const auto fitted = [&](flotilla::torch_model<torch::nn::Linear>& model, flotilla::fit_config config) {
    (void)model.fit(data, config);
    return model.parameters();
  };
  const auto make = [] {
    torch::nn::Linear linear(3, 1);
    torch::NoGradGuard no_gradients;
    linear->weight.zero_();
    linear->bias.zero_();
    return flotilla::torch_model(linear, {.sgd = {.learning_rate = 0.1, .epochs = 3, .batch_size = 0}}, flotilla::torch_sgd(),
                                 flotilla::torch_mse);
  };
  auto free = make(), held = make(), corrected = make();
  const auto moved = fitted(free, {.round = 1, .seed = 1});
  const auto pulled = fitted(held, {.round = 1, .seed = 1, .values = {{"proximal_mu", 5.0}}});
  CHECK(flotilla::l2_norm(pulled) < flotilla::l2_norm(moved));  // held nearer the start (zero)
  // A correction c adds c to every gradient: 3 full-batch steps at rate 0.1 move the bias by -0.3
  // c beyond the uncorrected run.
  auto correction = corrected.parameters();
  flotilla::fill(correction, 0.0f);
  correction.values()[3] = 1.0f;  // the bias
  corrected.set_step_correction(correction);
  const auto shifted = fitted(corrected, {.round = 1, .seed = 1});
  CHECK(corrected.last_fit().steps == 3);
  CHECK(shifted.values()[3] < moved.values()[3] - 0.2f);
  CHECK_THROWS_WITH_AS((void)free.fit(data, {.round = 1, .seed = 1, .values = {{"learning_rate", -1.0}}}),
                       "learning_rate must be positive; got -1.000000", flotilla::configuration_error);
}

TEST_CASE("what a torch model cannot federate or train on is refused with the reason") {
  torch::nn::Linear doubles(3, 1);
  doubles->to(torch::kFloat64);
  CHECK_THROWS_WITH_AS((void)flotilla::torch_model<torch::nn::Linear>(doubles), "torch_model federates float32 tensors on the CPU; 'weight' is Double on cpu",
                       flotilla::configuration_error);
  flotilla::torch_model model(torch::nn::Linear(3, 1), {}, flotilla::torch_sgd(), flotilla::torch_mse);
  CHECK_THROWS_WITH_AS((void)model.fit({torch::zeros({4, 3}), torch::zeros({3, 1})}, {}),
                       "torch_data holds 4 inputs and 3 targets", flotilla::configuration_error);
  const auto evaluated = model.evaluate({torch::zeros({4, 3}), torch::ones({4, 1})});
  CHECK(evaluated.examples == 4);
  CHECK(evaluated.metrics.count("accuracy") == 0);  // regression targets: a loss only
}

namespace {
// A LibTorch dataset of its own: example i is ([i, 2i], i % 2).
struct pairs : torch::data::datasets::Dataset<pairs> {
  torch::data::Example<> get(std::size_t index) override {
    const auto i = float(index);
    return {torch::tensor({i, 2 * i}), torch::tensor(std::int64_t(index % 2))};
  }
  torch::optional<std::size_t> size() const override { return 5; }
};
}  // namespace

TEST_CASE("a LibTorch dataset becomes torch_data, every example stacked in order") {
  pairs dataset;
  const auto data = flotilla::to_torch_data(dataset);
  CHECK(data.size() == 5);
  CHECK(data.inputs.size(0) == 5);
  CHECK(data.inputs.size(1) == 2);
  CHECK(data.inputs[3][1].item<float>() == 6.0f);
  CHECK((data.targets.scalar_type() == torch::kInt64));
  CHECK(data.targets[3].item<std::int64_t>() == 1);
  const std::vector<std::size_t> picked{4, 0};
  const auto subset = data.subset(picked);
  CHECK(subset.inputs[0][0].item<float>() == 4.0f);
  CHECK(subset.targets[1].item<std::int64_t>() == 0);
}

TEST_CASE("differential privacy's learner side clips a LibTorch model's update, and the module holds the clipped values") {
  torch::nn::Linear linear(3, 1);
  {
    torch::NoGradGuard no_gradients;
    linear->weight.zero_();
    linear->bias.zero_();
  }
  flotilla::privacy::private_model clipped(flotilla::torch_model(linear, {.sgd = {.learning_rate = 0.1, .epochs = 5, .batch_size = 0}},
                                                        flotilla::torch_sgd(), flotilla::torch_mse),
                                  {.clip_norm = 0.05});
  auto global = clipped.parameters();
  clipped.set_parameters(global);
  (void)clipped.fit(as_tensors(line_data(16, 3)), {.round = 1, .seed = 1});
  const auto update = flotilla::difference(clipped.parameters(), global);
  CHECK(flotilla::l2_norm(update) <= 0.05);
  CHECK(flotilla::l2_norm(update) > 0.049);  // it trained well past the bound, and was clipped to it
  // The module computes with the clipped parameters: its forward pass sees them.
  const auto output = linear->forward(torch::ones({1, 3})).item<float>();
  const auto p = clipped.parameters().values();
  CHECK(output == doctest::Approx(double(p[0] + p[1] + p[2] + p[3])).epsilon(1e-6));
}
