// Must not compile: parameters hold floating-point scalars. Expected diagnostic (CTest checks it):
// the unsatisfied 'floating_point' constraint.
#include <flotilla/parameters.hpp>

int main() {
  flotilla::parameters<int> integers;
  (void)integers;
}
