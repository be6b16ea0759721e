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

int odr_second() { return static_cast<int>(flotilla::parameters<float>(flotilla::tensor_layout({{"w", {2}}})).size()); }
