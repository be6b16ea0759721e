// Compile-time subject: a program that includes the umbrella header and federates the MLP: a
// round runs, so the learners' training and the coordinator's round are compiled, not only
// declared.
#include <flotilla/flotilla.hpp>
#include <flotilla/models.hpp>

#include "federate_mlp_main.hpp"
