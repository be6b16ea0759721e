#include <flotilla/data/partition.hpp>

#include <flotilla/data/dataset.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

TEST_CASE("an IID partition covers every example exactly once in near-equal parts") {
  const auto parts = flotilla::partition_iid(103, 10, 5);
  REQUIRE(parts.size() == 10);
  std::set<std::size_t> seen;
  for (const auto& part : parts) {
    CHECK((part.size() == 10 || part.size() == 11));
    seen.insert(part.begin(), part.end());
  }
  CHECK(seen.size() == 103);
  CHECK(*seen.rbegin() == 102);
}

TEST_CASE("an IID partition is reproducible for a seed and shuffled") {
  CHECK(flotilla::partition_iid(50, 5, 1) == flotilla::partition_iid(50, 5, 1));
  CHECK(flotilla::partition_iid(50, 5, 1) != flotilla::partition_iid(50, 5, 2));
  const auto first = flotilla::partition_iid(50, 5, 1)[0];
  CHECK_FALSE(std::ranges::is_sorted(first));
}

TEST_CASE("impossible partitions are refused") {
  CHECK_THROWS_WITH_AS((void)flotilla::partition_iid(10, 0, 1), "cannot partition data among zero learners",
                       flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)flotilla::partition_iid(3, 4, 1),
                       "cannot give each of 4 learners at least one of 3 examples", flotilla::configuration_error);
}

TEST_CASE("subsets copy the chosen examples in order") {
  flotilla::classification_data<float> data{Eigen::MatrixXf{{0, 1, 2, 3}, {10, 11, 12, 13}}, {0, 1, 0, 1}, 2};
  const std::vector<std::size_t> chosen{3, 1};
  const auto subset = data.subset(chosen);
  CHECK(subset.size() == 2);
  CHECK(subset.features(1, 0) == 13);
  CHECK(subset.features(0, 1) == 1);
  CHECK(subset.labels == std::vector<std::int32_t>{1, 1});
  CHECK(subset.classes == 2);
  const std::vector<std::size_t> outside{4};
  CHECK_THROWS_AS((void)data.subset(outside), flotilla::data_error);
}

namespace {
// 10 classes x 60 examples, labels interleaved 0, 1, ..., 9, 0, 1, ...
std::vector<std::int32_t> ten_classes() {
  std::vector<std::int32_t> labels(600);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::int32_t>(i % 10);
  return labels;
}

void check_covers_exactly_once(const std::vector<std::vector<std::size_t>>& parts, std::size_t examples) {
  std::vector<int> seen(examples, 0);
  for (const auto& part : parts)
    for (auto i : part) ++seen.at(i);
  CHECK(std::ranges::all_of(seen, [](int n) { return n == 1; }));
}

// The mean over learners of the share of a learner's examples held by its largest class.
double mean_top_class_share(const std::vector<std::vector<std::size_t>>& counts) {
  double sum = 0;
  for (const auto& row : counts) {
    std::size_t total = 0;
    for (auto n : row) total += n;
    sum += double(*std::ranges::max_element(row)) / double(total);
  }
  return sum / double(counts.size());
}
}  // namespace

TEST_CASE("Gamma and Dirichlet samples have the right means") {
  flotilla::random_engine engine(9);
  for (const double shape : {0.1, 0.5, 1.0, 3.0}) {
    double sum = 0;
    for (int i = 0; i < 40'000; ++i) sum += flotilla::gamma_sample(engine, shape);
    CAPTURE(shape);
    CHECK(sum / 40'000 == doctest::Approx(shape).epsilon(0.05));  // E[Gamma(k, 1)] = k
  }
  const auto share = flotilla::dirichlet_sample(engine, 7, 0.3);
  CHECK(std::accumulate(share.begin(), share.end(), 0.0) == doctest::Approx(1.0));
  CHECK(std::ranges::all_of(share, [](double x) { return x >= 0; }));
}

TEST_CASE("a Dirichlet label split covers every example once; alpha sets the skew") {
  const auto labels = ten_classes();
  const auto skewed = flotilla::partition_dirichlet(labels, 20, 0.1, 4);
  const auto even = flotilla::partition_dirichlet(labels, 20, 1000.0, 4);
  check_covers_exactly_once(skewed, labels.size());
  check_covers_exactly_once(even, labels.size());
  // With alpha = 0.1 a learner's largest class holds most of its data; with alpha = 1000 about a
  // tenth, as in the whole set.
  CHECK(mean_top_class_share(flotilla::label_counts(skewed, labels)) > 0.6);
  CHECK(mean_top_class_share(flotilla::label_counts(even, labels)) < 0.25);
  CHECK(flotilla::partition_dirichlet(labels, 20, 0.1, 4) == skewed);  // reproducible
  CHECK(flotilla::partition_dirichlet(labels, 20, 0.1, 5) != skewed);
  const auto at_least_ten = flotilla::partition_dirichlet(labels, 20, 0.5, 4, 10);
  CHECK(std::ranges::all_of(at_least_ten, [](const auto& part) { return part.size() >= 10; }));
}

TEST_CASE("pathological shards give each learner about k classes in equal parts") {
  const auto labels = ten_classes();
  // 10 learners x 2 shards of 30 examples: each shard lies within one class.
  const auto parts = flotilla::partition_shards(labels, 10, 2, 7);
  check_covers_exactly_once(parts, labels.size());
  for (const auto& row : flotilla::label_counts(parts, labels)) {
    CHECK(std::ranges::count_if(row, [](std::size_t n) { return n > 0; }) <= 2);
    CHECK(std::accumulate(row.begin(), row.end(), std::size_t{0}) == 60);
  }
  CHECK(flotilla::partition_shards(labels, 10, 2, 7) == parts);
}

TEST_CASE("quantity skew varies the learners' sizes, each with at least one example") {
  const auto parts = flotilla::partition_quantity_skew(1000, 10, 0.5, 3);
  check_covers_exactly_once(parts, 1000);
  std::vector<std::size_t> sizes;
  for (const auto& part : parts) sizes.push_back(part.size());
  CHECK(*std::ranges::min_element(sizes) >= 1);
  CHECK(*std::ranges::max_element(sizes) > 3 * *std::ranges::min_element(sizes));
  CHECK(flotilla::partition_quantity_skew(1000, 10, 0.5, 3) == parts);
}

TEST_CASE("non-IID splits refuse what cannot work") {
  const auto labels = ten_classes();
  using flotilla::configuration_error;
  CHECK_THROWS_WITH_AS((void)flotilla::partition_dirichlet(labels, 5, 0.0, 1), "Dirichlet alpha must be positive; got 0.000000",
                       configuration_error);
  CHECK_THROWS_WITH_AS((void)flotilla::partition_dirichlet(labels, 100, 1.0, 1, 7),
                       "cannot give each of 100 learners at least 7 of 600 examples", configuration_error);
  CHECK_THROWS_WITH_AS((void)flotilla::partition_shards(labels, 10, 0, 1), "each learner needs at least one shard",
                       configuration_error);
  CHECK_THROWS_WITH_AS((void)flotilla::partition_shards(labels, 400, 2, 1),
                       "cannot cut 800 shards (400 learners x 2) from 600 examples", configuration_error);
  const std::vector<std::int32_t> negative{0, -1, 2};
  CHECK_THROWS_WITH_AS((void)flotilla::partition_dirichlet(negative, 2, 1.0, 1), "labels must be non-negative; found -1",
                       configuration_error);
  CHECK_THROWS_AS((void)flotilla::partition_quantity_skew(5, 6, 1.0, 1), configuration_error);
}

TEST_CASE("a label summary lists each learner's classes, largest first") {
  const std::vector<std::int32_t> labels{0, 1, 1, 2, 2, 2, 1};
  const std::vector<std::vector<std::size_t>> parts{{3, 4, 5, 1}, {0, 2, 6}};
  const auto counts = flotilla::label_counts(parts, labels);
  CHECK(counts == std::vector<std::vector<std::size_t>>{{0, 1, 3}, {1, 2, 0}});
  CHECK(flotilla::describe_label_counts(counts) == "learner 0: 4 examples; 2: 3, 1: 1\nlearner 1: 3 examples; 1: 2, 0: 1\n");
}
