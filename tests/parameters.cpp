#include <flotilla/parameters.hpp>

#include <doctest/doctest.h>

#include <cstdint>

using flotilla::parameters;
using flotilla::tensor_layout;

namespace {
tensor_layout two_tensors() { return tensor_layout({{"weight", {2, 3}}, {"bias", {2}}}); }
}  // namespace

TEST_CASE("a layout places tensors end to end") {
  const auto layout = two_tensors();
  CHECK(layout.size() == 8);
  CHECK(layout.offset(0) == 0);
  CHECK(layout.offset(1) == 6);
  CHECK(layout.index_of("bias") == 1);
  CHECK(layout.tensors()[0].size() == 6);
  CHECK(flotilla::tensor_spec{"scalar", {}}.size() == 1);
  CHECK_THROWS_WITH_AS((void)layout.index_of("gamma"), "no tensor named 'gamma' in this parameter layout",
                       flotilla::layout_error);
}

TEST_CASE("a layout rejects unnamed and repeated tensors") {
  CHECK_THROWS_WITH_AS(tensor_layout({{"", {1}}}), "a tensor in a parameter layout has no name", flotilla::layout_error);
  CHECK_THROWS_WITH_AS(tensor_layout({{"w", {1}}, {"w", {2}}}), "tensor name 'w' appears twice in a parameter layout",
                       flotilla::layout_error);
}

TEST_CASE("layouts are equal when names and shapes are") {
  CHECK(two_tensors() == two_tensors());
  CHECK_FALSE(two_tensors() == tensor_layout({{"weight", {3, 2}}, {"bias", {2}}}));
  CHECK_FALSE(two_tensors() == tensor_layout({{"weights", {2, 3}}, {"bias", {2}}}));
  CHECK_FALSE(two_tensors() == tensor_layout({{"bias", {2}}, {"weight", {2, 3}}}));
}

TEST_CASE("parameters are one zeroed, cache-aligned buffer") {
  parameters<float> p(two_tensors());
  REQUIRE(p.size() == 8);
  CHECK(reinterpret_cast<std::uintptr_t>(p.values().data()) % 64 == 0);
  for (float value : p.values()) CHECK(value == 0.0f);
}

TEST_CASE("tensors are Eigen views into the flat buffer, not copies") {
  parameters<double> p(two_tensors());
  for (std::size_t i = 0; i < p.size(); ++i) p.values()[i] = double(i);
  auto weight = p.matrix("weight");
  REQUIRE(weight.rows() == 2);
  REQUIRE(weight.cols() == 3);
  CHECK(weight.data() == p.values().data());
  CHECK(weight(1, 0) == 1.0);  // column-major: element (1, 0) is the second scalar
  CHECK(weight(0, 2) == 4.0);
  auto bias = p.vector("bias");
  CHECK(bias.data() == p.values().data() + 6);
  bias(1) = 42.0;
  CHECK(p.values()[7] == 42.0);
  weight(1, 2) = -1.0;
  CHECK(p.values()[5] == -1.0);
  CHECK(p.values("bias").size() == 2);
  CHECK(p.vector(std::size_t{0}).size() == 6);
}

TEST_CASE("copies share the layout and own their values") {
  parameters<float> a(two_tensors());
  a.values()[0] = 1.0f;
  parameters<float> b = a;
  CHECK(b.shared_layout() == a.shared_layout());
  CHECK(b == a);
  b.values()[0] = 2.0f;
  CHECK(a.values()[0] == 1.0f);
  CHECK_FALSE(b == a);
  CHECK_FALSE(parameters<float>(two_tensors()) == parameters<float>(tensor_layout({{"weight", {8}}})));
}

TEST_CASE("default parameters are empty") {
  parameters<float> empty;
  CHECK(empty.size() == 0);
  CHECK(empty.layout() == tensor_layout{});
}

TEST_CASE("for_overwrite parameters have the layout's size and are writable") {
  auto layout = std::make_shared<const tensor_layout>(two_tensors());
  parameters<float> p(layout, flotilla::for_overwrite);
  REQUIRE(p.size() == 8);
  for (auto& value : p.values()) value = 2.0f;
  CHECK(p.vector("bias")(1) == 2.0f);
  CHECK(p.shared_layout() == layout);
}

TEST_CASE("a freed large buffer is reused, and the cache can be turned off") {
  const tensor_layout large({{"w", {std::size_t{10} << 20}}});  // 40 MiB of float: above the 32 MiB threshold
  const float* first = nullptr;
  {
    parameters<float> a(large);
    first = a.values().data();
    CHECK(reinterpret_cast<std::uintptr_t>(first) % 64 == 0);
  }
  {
    parameters<float> b(large);
    CHECK(b.values().data() == first);  // the same block, without new page faults
    for (float value : b.values()) REQUIRE(value == 0.0f);  // and zeroed again for a fresh set
  }
  flotilla::set_large_buffer_cache(0, 0);
  { parameters<float> c(large); }
  flotilla::set_large_buffer_cache(8, std::size_t{2} << 30);
}
