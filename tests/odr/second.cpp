#include "all_headers.hpp"

int odr_second() { return static_cast<int>(flotilla::parameters<float>(flotilla::tensor_layout({{"w", {2}}})).size()); }
