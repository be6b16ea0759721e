// flotilla::compiled: the non-template code and the common instantiations that the headers
// declare (FLOTILLA_DECL, `extern template`) when FLOTILLA_SEPARATE_COMPILATION is on, compiled
// here once (see include/flotilla/detail/config.hpp). One translation unit, so that each
// non-template definition exists once.
#include <flotilla/flotilla.hpp>
#include <flotilla/models.hpp>
#include <flotilla/data/fashion_mnist.hpp>
#include <flotilla/detail/crc32c.hpp>
#include <flotilla/persistence/checkpoint.hpp>
#include <flotilla/persistence/history_export.hpp>
#ifdef FLOTILLA_COMPILED_TCP
#include <flotilla/transport/tcp/detail/client_core.hpp>
#include <flotilla/transport/tcp/frame.hpp>
#include <flotilla/transport/tcp/protocol.hpp>
#include <flotilla/transport/tcp/server_transport.hpp>
#endif

namespace flotilla {
template class parameters<float>;
template class parameters<double>;
template class basic_mean<parameters<float>, by_examples>;
template class basic_mean<parameters<double>, by_examples>;
template class mlp<float>;
template class softmax_regression<float>;
template class learner<mlp<float>, classification_data<float>>;
template class learner<softmax_regression<float>, classification_data<float>>;
template class in_memory_transport<learner<mlp<float>, classification_data<float>>>;
template class coordinator<in_memory_transport<learner<mlp<float>, classification_data<float>>>>;
template class linear_regression<double>;
template class learner<linear_regression<double>, regression_data<double>>;
template class in_memory_transport<learner<linear_regression<double>, regression_data<double>>>;
template class coordinator<in_memory_transport<learner<linear_regression<double>, regression_data<double>>>>;
#ifdef FLOTILLA_COMPILED_TCP
template class tcp::server_transport<parameters<float>>;
template class coordinator<tcp::server_transport<parameters<float>>>;
#endif
}  // namespace flotilla
