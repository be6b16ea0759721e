// Compile-time subject: the same program as federate_mlp.cpp, including only the headers it uses
// (the coordinator, the learner, the in-memory transport, the MLP and the wire codec) instead of
// the umbrella: what a large build gains from including what it uses.
#include <flotilla/coordinators/synchronous.hpp>
#include <flotilla/models/mlp.hpp>
#include <flotilla/round/learner.hpp>
#include <flotilla/transport/in_memory.hpp>
#include <flotilla/wire/codec.hpp>

#include "federate_mlp_main.hpp"
