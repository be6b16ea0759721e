// A user's own parameter type over real TCP: one that holds its multi-MiB values inline in a
// std::array gets its codec from the library, and its values still land in place when a message
// spans many receive chunks.
#include <flotilla/transport/tcp/learner_client.hpp>
#include <flotilla/transport/tcp/server_transport.hpp>

#include "tcp_support.hpp"

#include <pthread.h>

#include <array>
#include <functional>
#include <memory>
#include <span>

using namespace tcp_test;

namespace {

// 2 MiB of floats, inline: twice the transport's first receive chunk. Messages carry a P by value,
// so the coordinator's thread holds about six at once on its stack (12 MiB here, more than a
// default 8 MiB stack; README: "Parameters held inline") and runs on a thread with a larger one,
// while the transport's network thread, which decodes about three, keeps its default. Under
// AddressSanitizer frames do not share stack slots, so that pass sends 1.25 MiB: still more than
// one chunk, the case the streaming decode must get right.
#if defined(__SANITIZE_ADDRESS__)
#define FLOTILLA_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FLOTILLA_TEST_SANITIZED 1
#endif
#endif
#ifdef FLOTILLA_TEST_SANITIZED
constexpr std::size_t weights = 1280 * 1024 / sizeof(float);
#else
constexpr std::size_t weights = 2 * 1024 * 1024 / sizeof(float);
#endif

struct inline_parameters {
  using scalar_type = float;
  std::array<float, weights> w{};
  std::span<float> values() { return w; }
  std::span<const float> values() const { return w; }
  std::size_t layout() const { return weights; }
};
static_assert(flotilla::FixedShapeParameters<inline_parameters>);
static_assert(flotilla::WireCodable<inline_parameters>);

// Fit adds the learner's id to every weight, so the mean of learners 1, 2, 3 adds 2 a round.
struct shifting_model {
  std::unique_ptr<inline_parameters> p = std::make_unique<inline_parameters>();
  float shift = 0;
  shifting_model() = default;
  shifting_model(const shifting_model& other) : p(std::make_unique<inline_parameters>(*other.p)), shift(other.shift) {}
  shifting_model(shifting_model&&) = default;
  const inline_parameters& parameters() const { return *p; }
  void set_parameters(const inline_parameters& q) { *p = q; }
  flotilla::local_result fit(const int&, const flotilla::fit_config&) {
    for (auto& x : p->w) x += shift;
    return {1, {}};
  }
};
using shifting_learner = flotilla::learner<shifting_model, int>;

struct shifting_client {
  explicit shifting_client(flotilla::learner_id id, flotilla::tcp::client_options options)
      : learner(id, make_model(float(id)), 0), client(learner, std::move(options)), thread([this] { client.run(); }) {}
  ~shifting_client() {
    client.stop();
    thread.join();
  }
  static shifting_model make_model(float shift) {
    shifting_model m;
    m.shift = shift;
    return m;
  }
  shifting_learner learner;
  flotilla::tcp::learner_client<shifting_learner> client;
  std::thread thread;
};

std::unique_ptr<inline_parameters> counting_up() {
  auto p = std::make_unique<inline_parameters>();
  for (std::size_t i = 0; i < weights; ++i) p->w[i] = float(i % 100);
  return p;
}

// Runs `body` on a thread with a `bytes`-sized stack and waits for it.
void on_large_stack(std::size_t bytes, std::function<void()> body) {
  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  pthread_attr_setstacksize(&attributes, bytes);
  pthread_t thread;
  const auto run = [](void* f) -> void* {
    (*static_cast<std::function<void()>*>(f))();
    return nullptr;
  };
  REQUIRE(pthread_create(&thread, &attributes, run, &body) == 0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attributes);
}

}  // namespace

TEST_CASE("the library's codec of an inline parameter type: width, count, scalars; a cut message is refused") {
  const auto initial = counting_up();
  const auto bytes = flotilla::encode(*initial);
  CHECK(bytes.size() == 4 + 2 + 1 + 1 + 1 + 8 + weights * sizeof(float));  // endianness, envelope, width, count, scalars
  const auto decoded = std::make_unique<inline_parameters>(flotilla::decode<inline_parameters>(bytes));
  CHECK(decoded->w == initial->w);
  auto cut = bytes;
  cut.resize(cut.size() - 4);
  CHECK_THROWS_WITH_AS((void)flotilla::decode<inline_parameters>(cut), doctest::Contains("truncated"),
                       flotilla::decode_error);
}

TEST_CASE("a parameter type holding multi-MiB values inline crosses TCP, its values landing in place") {
  captured_log log;
  flotilla::tcp::server_transport<inline_parameters> transport(quick_server(log));
  std::vector<std::unique_ptr<shifting_client>> clients;
  for (flotilla::learner_id id = 1; id <= 3; ++id)
    clients.push_back(std::make_unique<shifting_client>(id, quick_client(transport.port(), log)));
  std::size_t rounds = 0, rejections = 0, wrong = 0;
  float last = 0;
  on_large_stack(std::size_t{32} << 20, [&] {
    flotilla::coordinator federation(transport, *counting_up(), {.quorum = 3, .round_timeout = 20s, .wait_for_learners = 5s});
    const auto& history = federation.run(flotilla::stop::after_rounds(2));
    rounds = history.rounds.size();
    for (const auto& round : history.rounds) rejections += round.rejections.size();
    const auto& global = federation.global().w;
    for (std::size_t i = 0; i < weights; ++i) wrong += global[i] != float(i % 100) + 4.0f;
    last = global[weights - 1];
  });
  CHECK(rounds == 2);
  CHECK(rejections == 0);
  CHECK(wrong == 0);
  CHECK(last == float((weights - 1) % 100) + 4.0f);
  transport.say_goodbye();
}
