// Compile-time subject: a learner served over the Asio TCP transport.
#include <flotilla/flotilla.hpp>
#include <flotilla/models.hpp>
#include <flotilla/transport/tcp/learner_client.hpp>

#include "tcp_learner_main.hpp"
