#include <flotilla/arithmetic.hpp>

#include <flotilla/detail/parallel.hpp>
#include <flotilla/parameters.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <thread>
#include <utility>
#include <limits>
#include <vector>

namespace {
flotilla::parameters<double> vector_of(std::vector<double> values) {
  flotilla::parameters<double> p(flotilla::tensor_layout({{"v", {values.size()}}}));
  for (std::size_t i = 0; i < values.size(); ++i) p.values()[i] = values[i];
  return p;
}
std::vector<double> values_of(const flotilla::parameters<double>& p) { return {p.values().begin(), p.values().end()}; }
}  // namespace

TEST_CASE("axpy, scale, fill and difference act element by element") {
  auto y = vector_of({1, 2, 3});
  flotilla::axpy(y, 2.0, vector_of({1, -1, 0.5}));
  CHECK(values_of(y) == std::vector<double>{3, 0, 4});
  flotilla::scale(y, 0.5);
  CHECK(values_of(y) == std::vector<double>{1.5, 0, 2});
  CHECK(values_of(flotilla::difference(y, vector_of({0.5, 1, 1}))) == std::vector<double>{1, -1, 1});
  flotilla::fill(y, 7.0);
  CHECK(values_of(y) == std::vector<double>{7, 7, 7});
}

TEST_CASE("norms and dot products") {
  const auto x = vector_of({3, -4, 0});
  CHECK(flotilla::dot(x, vector_of({1, 1, 1})) == -1.0);
  CHECK(flotilla::l2_norm(x) == 5.0);
  CHECK(flotilla::linf_norm(x) == 4.0);
  CHECK(flotilla::linf_norm(flotilla::parameters<double>{}) == 0.0);
}

TEST_CASE("non-finite values are found by index") {
  auto x = vector_of({1, 2, 3, 4});
  CHECK(flotilla::first_non_finite(x) == 4);
  x.values()[2] = std::numeric_limits<double>::infinity();
  CHECK(flotilla::first_non_finite(x) == 2);
  x.values()[1] = std::nan("");
  CHECK(flotilla::first_non_finite(x) == 1);
}

TEST_CASE("non-finite values are found in every block and in the tail, in both widths") {
  // 2,500 scalars: two whole blocks of 1,024 checked at once, then a tail of 452 one by one.
  const auto check_width = [](auto zero) {
    using scalar = decltype(zero);
    flotilla::parameters<scalar> x(flotilla::tensor_layout({{"w", {2500}}}));
    for (std::size_t i = 0; i < x.size(); ++i) x.values()[i] = scalar(i) - scalar(1000);
    CHECK(flotilla::first_non_finite(x) == 2500);
    x.values()[1] = std::numeric_limits<scalar>::max();  // the largest finite value is finite
    x.values()[2] = std::numeric_limits<scalar>::denorm_min();
    CHECK(flotilla::first_non_finite(x) == 2500);
    for (const std::size_t at : {std::size_t{0}, std::size_t{1023}, std::size_t{1024}, std::size_t{2047},
                                 std::size_t{2048}, std::size_t{2499}}) {
      for (const scalar bad : {std::numeric_limits<scalar>::infinity(), -std::numeric_limits<scalar>::infinity(),
                               std::numeric_limits<scalar>::quiet_NaN()}) {
        CAPTURE(at);
        const auto kept = x.values()[at];
        x.values()[at] = bad;
        CHECK(flotilla::first_non_finite(x) == at);
        x.values()[at] = kept;
      }
    }
    x.values()[1500] = std::numeric_limits<scalar>::quiet_NaN();
    x.values()[2400] = std::numeric_limits<scalar>::infinity();
    CHECK(flotilla::first_non_finite(x) == 1500);  // the first of two
  };
  check_width(0.0f);
  check_width(0.0);
}

TEST_CASE("mismatched layouts are refused with counts or a layout difference") {
  auto y = vector_of({1, 2, 3});
  CHECK_THROWS_WITH_AS(flotilla::axpy(y, 1.0, vector_of(std::vector<double>(1210, 0.0))),
                       "update has 1,210 parameters; the global model has 3", flotilla::layout_error);
  flotilla::parameters<double> renamed(flotilla::tensor_layout({{"w", {3}}}));
  CHECK_THROWS_WITH_AS(flotilla::axpy(y, 1.0, renamed),
                       "update has 3 parameters like the global model, but its tensor layout (names or shapes) differs",
                       flotilla::layout_error);
  CHECK(values_of(y) == std::vector<double>{1, 2, 3});  // untouched
}

TEST_CASE("for_each_piece covers every index exactly once, in whole cache lines but the last") {
  for (const std::size_t count : {std::size_t{0}, std::size_t{1}, std::size_t{1} << 18, (std::size_t{1} << 20) + 5}) {
    for (const std::size_t threads : {std::size_t{1}, std::size_t{2}, std::size_t{3}}) {
      std::vector<int> seen(count, 0);
      std::mutex mutex;
      std::vector<std::pair<std::size_t, std::size_t>> pieces;
      flotilla::detail::for_each_piece(count, threads, [&](std::size_t begin, std::size_t end) {
        for (auto i = begin; i < end; ++i) ++seen[i];
        std::lock_guard lock(mutex);
        pieces.emplace_back(begin, end);
      });
      CHECK(std::ranges::count(seen, 1) == std::ptrdiff_t(count));
      // Small buffers stay on the calling thread; larger ones are split as asked, up to the
      // process's helpers (one fewer than the cores) and the calling thread.
      const std::size_t available = flotilla::detail::piece_helpers::instance().size() + 1;
      CHECK(pieces.size() == (count >= (std::size_t{1} << 16) ? std::min(threads, available) : 1));
      for (const auto& [begin, end] : pieces) CHECK((begin % 64 == 0));
    }
  }
}

TEST_CASE("passes from two threads at once, and a pass inside a piece, each cover every index once") {
  constexpr std::size_t count = std::size_t{1} << 18;
  std::vector<int> first(count, 0), second(count, 0), nested(count, 0);
  const auto pass = [](std::vector<int>& seen) {
    flotilla::detail::for_each_piece(seen.size(), 0, [&](std::size_t begin, std::size_t end) {
      for (auto i = begin; i < end; ++i) ++seen[i];
    });
  };
  std::thread other([&] { for (int r = 0; r < 50; ++r) pass(second); });
  for (int r = 0; r < 50; ++r) pass(first);
  other.join();
  CHECK(std::ranges::count(first, 50) == std::ptrdiff_t(count));
  CHECK(std::ranges::count(second, 50) == std::ptrdiff_t(count));
  // A piece that starts its own pass over a second buffer runs it on its own thread: no wait on
  // helpers that are busy with the outer pass.
  std::mutex mutex;
  flotilla::detail::for_each_piece(count, 0, [&](std::size_t, std::size_t) {
    std::lock_guard lock(mutex);
    pass(nested);
  });
  const auto pieces = nested[0];
  CHECK(pieces >= 1);
  CHECK(std::ranges::count(nested, pieces) == std::ptrdiff_t(count));
}

TEST_CASE("make_for_overwrite keeps the layout; a type without the tag constructor gets a copy") {
  const auto original = vector_of({1, 2, 3});
  const auto fresh = flotilla::make_for_overwrite(original);
  CHECK(fresh.layout() == original.layout());
  CHECK(fresh.values().size() == 3);
  CHECK(&fresh.layout() == &original.layout());  // the layout is shared, not copied

  struct plain_set {
    using scalar_type = double;
    std::vector<double> data;
    std::span<double> values() { return data; }
    std::span<const double> values() const { return data; }
    std::size_t layout() const { return data.size(); }
  };
  static_assert(flotilla::ParameterSet<plain_set>);
  CHECK(flotilla::make_for_overwrite(plain_set{{4, 5}}).data == std::vector<double>{4, 5});
}
