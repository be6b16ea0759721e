#include <flotilla/data/partition.hpp>

#include <flotilla/data/dataset.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <set>

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
  CHECK_THROWS_AS((void)data.subset(outside), std::out_of_range);
}
