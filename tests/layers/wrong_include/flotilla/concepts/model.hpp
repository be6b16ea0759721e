#pragma once
// Deliberately wrong: a contract that includes a coordinator. The layer check must refuse it.
#include "flotilla/coordinators/synchronous.hpp"
