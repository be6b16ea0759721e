// flotilla::compiled, the TCP part: the server transport and the coordinator over it for
// parameters<float>, compiled once.
#include <flotilla/transport/tcp/server_transport.hpp>
#include <flotilla/coordinators/synchronous.hpp>

namespace flotilla {
template class tcp::server_transport<parameters<float>>;
template class coordinator<tcp::server_transport<parameters<float>>>;
}  // namespace flotilla
