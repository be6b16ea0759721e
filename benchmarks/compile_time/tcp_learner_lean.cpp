// Compile-time subject: the same learner as tcp_learner.cpp, including only the headers it uses
// (the learner, the MLP and the learner client) instead of the umbrella.
#include <flotilla/round/learner.hpp>
#include <flotilla/models/mlp.hpp>
#include <flotilla/transport/tcp/learner_client.hpp>

#include "tcp_learner_main.hpp"
