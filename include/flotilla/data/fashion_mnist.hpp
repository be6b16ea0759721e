#pragma once
// Reads Fashion-MNIST from the gzip-compressed IDX files of Debian's dataset-fashion-mnist
// package (/usr/share/datasets/fashion-mnist). Needs zlib (target flotilla::data).

#include <zlib.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "flotilla/detail/config.hpp"
#include "flotilla/data/dataset.hpp"
#include "flotilla/errors.hpp"

namespace flotilla {

/// Where Debian's dataset-fashion-mnist package installs the files.
inline const std::filesystem::path fashion_mnist_default_directory = "/usr/share/datasets/fashion-mnist";

enum class fashion_mnist_split : std::uint8_t { train, test };

namespace detail {

FLOTILLA_DECL std::vector<std::uint8_t> read_gzip(const std::filesystem::path& file);

FLOTILLA_DECL std::uint32_t big_endian_u32(const std::vector<std::uint8_t>& bytes, std::size_t at);

/// Checks an IDX header (magic 0x000008NN: unsigned bytes, NN dimensions) and the payload size;
/// returns the dimensions.
FLOTILLA_DECL std::vector<std::size_t> idx_dimensions(const std::vector<std::uint8_t>& bytes, std::uint32_t rank,
                                                      const std::filesystem::path& file);

}  // namespace detail

/// Loads one split: features are pixels scaled to [0, 1], 784 rows, one column per image;
/// labels in [0, 10).
/// @throws data_error naming the missing file and the package to install, or what is malformed.
[[nodiscard]] FLOTILLA_DECL classification_data<float> load_fashion_mnist(
    fashion_mnist_split split, const std::filesystem::path& directory = fashion_mnist_default_directory);

#if FLOTILLA_HEADER_DEFINITIONS
namespace detail {
FLOTILLA_DECL std::vector<std::uint8_t> read_gzip(const std::filesystem::path& file) {
  if (!std::filesystem::exists(file))
    throw data_error("Fashion-MNIST file " + file.string() +
                     " is missing; install Debian's package with: sudo apt-get install dataset-fashion-mnist");
  std::unique_ptr<gzFile_s, int (*)(gzFile)> stream(gzopen(file.c_str(), "rb"), gzclose);
  if (!stream) throw data_error("cannot open " + file.string());
  std::vector<std::uint8_t> bytes;
  std::array<std::uint8_t, 1 << 16> chunk{};
  for (;;) {
    const int read = gzread(stream.get(), chunk.data(), static_cast<unsigned>(chunk.size()));
    if (read < 0) throw data_error("cannot decompress " + file.string() + " (corrupt gzip data)");
    if (read == 0) break;
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + read);
  }
  return bytes;
}

FLOTILLA_DECL std::uint32_t big_endian_u32(const std::vector<std::uint8_t>& bytes, std::size_t at) {
  return std::uint32_t(bytes[at]) << 24 | std::uint32_t(bytes[at + 1]) << 16 | std::uint32_t(bytes[at + 2]) << 8 |
         std::uint32_t(bytes[at + 3]);
}

FLOTILLA_DECL std::vector<std::size_t> idx_dimensions(const std::vector<std::uint8_t>& bytes, std::uint32_t rank,
                                                      const std::filesystem::path& file) {
  const std::size_t header = 4 + 4 * std::size_t{rank};
  if (bytes.size() < header || big_endian_u32(bytes, 0) != (0x0800u | rank))
    throw data_error(file.string() + " is not an IDX file of unsigned bytes with " + std::to_string(rank) +
                     " dimensions");
  std::vector<std::size_t> dimensions;
  std::size_t payload = 1;
  for (std::uint32_t i = 0; i < rank; ++i) {
    dimensions.push_back(big_endian_u32(bytes, 4 + 4 * std::size_t{i}));
    payload *= dimensions.back();
  }
  if (bytes.size() != header + payload)
    throw data_error(file.string() + " holds " + std::to_string(bytes.size() - header) + " data bytes; its header says " +
                     std::to_string(payload));
  return dimensions;
}
}  // namespace detail
FLOTILLA_DECL classification_data<float> load_fashion_mnist(
    fashion_mnist_split split, const std::filesystem::path& directory) {
  const std::string prefix = split == fashion_mnist_split::train ? "train" : "t10k";
  const auto image_file = directory / (prefix + "-images-idx3-ubyte.gz");
  const auto label_file = directory / (prefix + "-labels-idx1-ubyte.gz");
  const auto images = detail::read_gzip(image_file);
  const auto labels = detail::read_gzip(label_file);
  const auto image_dims = detail::idx_dimensions(images, 3, image_file);
  const auto label_dims = detail::idx_dimensions(labels, 1, label_file);
  if (image_dims[0] != label_dims[0])
    throw data_error(image_file.string() + " holds " + std::to_string(image_dims[0]) + " images but " +
                     label_file.string() + " holds " + std::to_string(label_dims[0]) + " labels");
  const auto count = static_cast<Eigen::Index>(image_dims[0]);
  const auto pixels = static_cast<Eigen::Index>(image_dims[1] * image_dims[2]);
  classification_data<float> data{.features = Eigen::MatrixXf(pixels, count), .labels = {}, .classes = 10};
  const std::uint8_t* pixel = images.data() + 16;
  for (Eigen::Index i = 0; i < count * pixels; ++i) data.features.data()[i] = float(pixel[i]) / 255.0f;
  data.labels.reserve(label_dims[0]);
  for (std::size_t i = 0; i < label_dims[0]; ++i) {
    if (labels[8 + i] >= 10) throw data_error(label_file.string() + " holds label " + std::to_string(labels[8 + i]));
    data.labels.push_back(labels[8 + i]);
  }
  return data;
}
#endif  // FLOTILLA_HEADER_DEFINITIONS

}  // namespace flotilla
