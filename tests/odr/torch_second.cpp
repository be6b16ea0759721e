// A second translation unit including the LibTorch adapter, linked into test_torch: a definition
// in the header that is not inline would be defined twice and fail to link.
#include <flotilla/integrations/torch/model.hpp>
