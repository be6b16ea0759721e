#include <flotilla/algorithms/secure_aggregation/graph.hpp>

#include <doctest/doctest.h>

// SecAgg+'s degree and threshold against the values Google's federated-compute publishes for its
// graph parameter finder (fcp/secagg/server/graph_parameter_finder_test.cc, honest-but-curious
// server): the same degree, and a threshold no larger.

namespace secagg = flotilla::secure_aggregation;

TEST_CASE("degree and threshold match federated-compute's published values") {
  struct published {
    std::size_t learners;
    double corruption, dropout;
    std::size_t degree, threshold;
  };
  for (const auto& p : {published{10, 0.33, 0.33, 8, 4}, published{100, 0.33, 0.33, 68, 34},
                        published{1000, 0.33, 0.33, 286, 150}, published{10000, 0.33, 0.33, 422, 221},
                        published{100, 0.45, 0.45, 92, 46}, published{1000, 0.45, 0.45, 822, 417},
                        published{10, 0.05, 0.33, 4, 2}, published{100, 0.05, 0.33, 28, 6},
                        published{1000, 0.05, 0.33, 72, 24}, published{10000, 0.05, 0.33, 86, 29},
                        published{10, 0.33, 0.05, 4, 4}, published{100, 0.33, 0.05, 34, 29},
                        published{1000, 0.33, 0.05, 78, 60}, published{10000, 0.33, 0.05, 92, 70}}) {
    CAPTURE(p.learners);
    CAPTURE(p.corruption);
    CAPTURE(p.dropout);
    const auto found = secagg::find_graph_parameters(p.learners, p.dropout, p.corruption);
    CHECK(found.learners == p.learners);
    CHECK(found.degree == p.degree);
    CHECK(found.threshold <= p.threshold);
    CHECK(found.threshold >= 2);
  }
}

TEST_CASE("impossible threat models are refused by value") {
  CHECK_THROWS_WITH_AS((void)secagg::find_graph_parameters(1, 0.1, 0.1), "secure aggregation needs at least 2 learners; got 1",
                       flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)secagg::find_graph_parameters(100, 1.0, 0.1), "the dropout rate must be in [0, 1); got 1",
                       flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)secagg::find_graph_parameters(100, 0.1, -0.5), "the corruption rate must be in [0, 1); got -0.5",
                       flotilla::configuration_error);
  CHECK_THROWS_WITH_AS((void)secagg::find_graph_parameters(100, 0.5, 0.45),
                       "the dropout and corruption rates must sum to at most 0.9; got 0.95", flotilla::configuration_error);
}
