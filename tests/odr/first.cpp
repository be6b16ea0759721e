// Every header, included here and in second.cpp: duplicate definitions would fail to link.
#include <flotilla/data/fashion_mnist.hpp>
#include <flotilla/flotilla.hpp>

#include <doctest/doctest.h>

int odr_second();

TEST_CASE("every header can be included in two translation units of one program") {
  CHECK(odr_second() == 2);
  CHECK(flotilla::detail::grouped(1234) == "1,234");
}
