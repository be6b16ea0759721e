// Every header, included here and in second.cpp: duplicate definitions would fail to link.
#include <flotilla/data/fashion_mnist.hpp>
#include <flotilla/flotilla.hpp>
#ifdef FLOTILLA_ODR_WITH_ASIO
#include <flotilla/transport/asio/authentication.hpp>
#include <flotilla/transport/asio/frame.hpp>
#include <flotilla/transport/asio/learner_client.hpp>
#include <flotilla/transport/asio/protocol.hpp>
#include <flotilla/transport/asio/server_transport.hpp>
#include <flotilla/transport/asio/tls.hpp>
#endif

#include <doctest/doctest.h>

int odr_second();

TEST_CASE("every header can be included in two translation units of one program") {
  CHECK(odr_second() == 2);
  CHECK(flotilla::detail::grouped(1234) == "1,234");
}
