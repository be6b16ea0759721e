// flotilla::compiled, the core: the non-template code and the common instantiations declared
// `extern template` in the headers, compiled once (see include/flotilla/detail/config.hpp).
#include <flotilla/flotilla.hpp>
#include <flotilla/models.hpp>
#include <flotilla/data/fashion_mnist.hpp>
#include <flotilla/detail/crc32c.hpp>
#include <flotilla/persistence/history_export.hpp>

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
}  // namespace flotilla
