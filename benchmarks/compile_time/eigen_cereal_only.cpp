// Compile-time baseline: only the Eigen and cereal headers Flotilla uses, and a use of each.
#include <Eigen/Core>
#include <cereal/archives/portable_binary.hpp>

#include <sstream>

int main() {
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(8, 4), b = Eigen::MatrixXf::Random(4, 3);
  Eigen::MatrixXf c = a * b;
  std::ostringstream out;
  cereal::PortableBinaryOutputArchive archive(out);
  archive(cereal::binary_data(c.data(), static_cast<std::size_t>(c.size()) * sizeof(float)));
  return out.str().empty() ? 1 : 0;
}
