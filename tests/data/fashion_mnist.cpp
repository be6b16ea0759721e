#include <flotilla/data/fashion_mnist.hpp>

#include <doctest/doctest.h>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <vector>

namespace {
void write_gzip(const std::filesystem::path& file, const std::vector<unsigned char>& bytes) {
  gzFile out = gzopen(file.c_str(), "wb");
  REQUIRE(out != nullptr);
  REQUIRE(gzwrite(out, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  gzclose(out);
}
std::filesystem::path scratch_directory(const char* name) {
  auto directory = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(directory);
  std::filesystem::create_directories(directory);
  return directory;
}
// A valid IDX pair holding `count` 2x2 images with the given labels.
void write_tiny_split(const std::filesystem::path& directory, std::vector<unsigned char> labels) {
  const auto count = static_cast<unsigned char>(labels.size());
  std::vector<unsigned char> images{0, 0, 8, 3, 0, 0, 0, count, 0, 0, 0, 2, 0, 0, 0, 2};
  for (unsigned i = 0; i < 4u * count; ++i) images.push_back(static_cast<unsigned char>(i * 17));
  std::vector<unsigned char> label_file{0, 0, 8, 1, 0, 0, 0, count};
  label_file.insert(label_file.end(), labels.begin(), labels.end());
  write_gzip(directory / "t10k-images-idx3-ubyte.gz", images);
  write_gzip(directory / "t10k-labels-idx1-ubyte.gz", label_file);
}
}  // namespace

TEST_CASE("the Debian package's files load as 60,000 + 10,000 labelled 28x28 images") {
  const auto train = flotilla::load_fashion_mnist(flotilla::fashion_mnist_split::train);
  const auto test = flotilla::load_fashion_mnist(flotilla::fashion_mnist_split::test);
  CHECK(train.size() == 60000);
  CHECK(test.size() == 10000);
  CHECK(train.features.rows() == 784);
  CHECK(train.features.cols() == 60000);
  CHECK(test.classes == 10);
  CHECK(train.features.minCoeff() == 0.0f);
  CHECK(train.features.maxCoeff() == 1.0f);
  std::array<int, 10> train_counts{}, test_counts{};
  for (auto label : train.labels) ++train_counts.at(static_cast<std::size_t>(label));
  for (auto label : test.labels) ++test_counts.at(static_cast<std::size_t>(label));
  for (int count : train_counts) CHECK(count == 6000);  // Fashion-MNIST is balanced
  for (int count : test_counts) CHECK(count == 1000);
}

TEST_CASE("pixels are scaled to [0, 1], one column per image") {
  const auto directory = scratch_directory("flotilla-tiny-idx");
  write_tiny_split(directory, {3, 9});
  const auto data = flotilla::load_fashion_mnist(flotilla::fashion_mnist_split::test, directory);
  REQUIRE(data.size() == 2);
  CHECK(data.labels == std::vector<std::int32_t>{3, 9});
  CHECK(data.features.rows() == 4);
  CHECK(data.features(1, 0) == doctest::Approx(17.0 / 255.0));
  CHECK(data.features(0, 1) == doctest::Approx(68.0 / 255.0));  // the fifth pixel starts image 2
}

TEST_CASE("a missing file names the Debian package to install") {
  CHECK_THROWS_WITH_AS((void)flotilla::load_fashion_mnist(flotilla::fashion_mnist_split::train, "/no/such/dir"),
                       "Fashion-MNIST file /no/such/dir/train-images-idx3-ubyte.gz is missing; install Debian's "
                       "package with: sudo apt-get install dataset-fashion-mnist",
                       flotilla::data_error);
}

TEST_CASE("malformed files are reported") {
  const auto directory = scratch_directory("flotilla-bad-idx");
  SUBCASE("wrong magic") {
    write_tiny_split(directory, {1});
    write_gzip(directory / "t10k-images-idx3-ubyte.gz", {0, 0, 9, 3, 0, 0, 0, 0});
    CHECK_THROWS_WITH((void)flotilla::load_fashion_mnist(flotilla::fashion_mnist_split::test, directory),
                      doctest::Contains("is not an IDX file of unsigned bytes with 3 dimensions"));
  }
  SUBCASE("truncated payload") {
    write_tiny_split(directory, {1});
    write_gzip(directory / "t10k-labels-idx1-ubyte.gz", {0, 0, 8, 1, 0, 0, 0, 5, 1});
    CHECK_THROWS_WITH((void)flotilla::load_fashion_mnist(flotilla::fashion_mnist_split::test, directory),
                      doctest::Contains("holds 1 data bytes; its header says 5"));
  }
  SUBCASE("image and label counts differ") {
    write_tiny_split(directory, {1, 2});
    write_gzip(directory / "t10k-labels-idx1-ubyte.gz", {0, 0, 8, 1, 0, 0, 0, 1, 4});
    CHECK_THROWS_WITH((void)flotilla::load_fashion_mnist(flotilla::fashion_mnist_split::test, directory),
                      doctest::Contains("holds 2 images but"));
  }
  SUBCASE("a label outside the ten classes") {
    write_tiny_split(directory, {12});
    CHECK_THROWS_WITH((void)flotilla::load_fashion_mnist(flotilla::fashion_mnist_split::test, directory),
                      doctest::Contains("holds label 12"));
  }
}
