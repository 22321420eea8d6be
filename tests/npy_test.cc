#include "core/data/npy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace nearnd {
namespace {

using ::testing::HasSubstr;

std::string MakeTempDir() {
  static int counter = 0;
  const std::string path =
      testing::TempDir() + "npy_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++);
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
  return path;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary);
  file << bytes;
  ASSERT_TRUE(file.good()) << path;
}

// NpyV1 builds a version 1.0 file from a header dictionary and raw data, padding the header
// as numpy does.
std::string NpyV1(std::string header, const std::string& data) {
  while ((10 + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes.push_back(static_cast<char>(header.size() & 0xff));
  bytes.push_back(static_cast<char>(header.size() >> 8));
  return bytes + header + data;
}

TEST(Npy, RoundTripEachDtype) {
  const std::string dir = MakeTempDir();
  const torch::Tensor base = torch::arange(24).view({2, 3, 4});
  for (const torch::ScalarType dtype :
       {torch::kFloat32, torch::kFloat64, torch::kInt64, torch::kInt32, torch::kUInt8}) {
    SCOPED_TRACE(c10::toString(dtype));
    const torch::Tensor tensor = (base * 3 + 1).to(dtype);
    const std::string path = dir + "/" + c10::toString(dtype) + ".npy";
    ASSERT_TRUE(WriteNpy(tensor, path).ok());

    absl::StatusOr<torch::Tensor> read = ReadNpy(path);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->scalar_type(), dtype);
    EXPECT_EQ(read->sizes(), tensor.sizes());
    EXPECT_TRUE(torch::equal(*read, tensor));
  }
}

TEST(Npy, RoundTripFractionsAndShapes) {
  const std::string dir = MakeTempDir();
  const torch::Tensor matrix = torch::tensor({0.1f, -2.5f, 1e-30f, 3.4e38f}).view({2, 2});
  const torch::Tensor vector = torch::tensor({0.1, 0.2, 0.3}, torch::kFloat64);
  const torch::Tensor scalar = torch::scalar_tensor(7, torch::kInt64);
  const torch::Tensor empty = torch::zeros({0, 5});
  for (const torch::Tensor& tensor : {matrix, vector, scalar, empty}) {
    SCOPED_TRACE(tensor.sizes());
    ASSERT_TRUE(WriteNpy(tensor, dir + "/t.npy").ok());
    absl::StatusOr<torch::Tensor> read = ReadNpy(dir + "/t.npy");
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->sizes(), tensor.sizes());
    EXPECT_TRUE(torch::equal(*read, tensor));
  }
}

TEST(Npy, WritesNonContiguousTensorInCOrder) {
  const std::string dir = MakeTempDir();
  const torch::Tensor transposed = torch::arange(6, torch::kInt32).view({2, 3}).t();
  ASSERT_TRUE(WriteNpy(transposed, dir + "/t.npy").ok());

  absl::StatusOr<torch::Tensor> read = ReadNpy(dir + "/t.npy");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(torch::equal(*read, transposed));
}

TEST(Npy, HeaderIsVersion1PaddedTo64Bytes) {
  const std::string dir = MakeTempDir();
  ASSERT_TRUE(WriteNpy(torch::zeros({2, 3}), dir + "/t.npy").ok());

  const std::string bytes = ReadBytes(dir + "/t.npy");
  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t header_length =
      static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
  EXPECT_EQ((10 + header_length) % 64, 0u);
  EXPECT_EQ(bytes.size(), 10 + header_length + 6 * 4);

  const std::string header = bytes.substr(10, header_length);
  EXPECT_THAT(header, HasSubstr("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
  EXPECT_EQ(header.back(), '\n');
}

TEST(Npy, OneDimensionalShapeHasTrailingComma) {
  const std::string dir = MakeTempDir();
  ASSERT_TRUE(WriteNpy(torch::zeros({5}, torch::kUInt8), dir + "/t.npy").ok());
  EXPECT_THAT(ReadBytes(dir + "/t.npy"), HasSubstr("'descr': '|u1'"));
  EXPECT_THAT(ReadBytes(dir + "/t.npy"), HasSubstr("'shape': (5,)"));
}

TEST(Npy, ReadsVersion2) {
  const std::string dir = MakeTempDir();
  std::string header = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }";
  while ((12 + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::string bytes("\x93NUMPY\x02\x00", 8);
  bytes += std::string(1, static_cast<char>(header.size())) + std::string(3, '\0');
  bytes += header;
  bytes += std::string("\x05\x00\x00\x00\xfe\xff\xff\xff", 8);
  WriteBytes(dir + "/v2.npy", bytes);

  absl::StatusOr<torch::Tensor> read = ReadNpy(dir + "/v2.npy");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(torch::equal(*read, torch::tensor({5, -2}, torch::kInt32)));
}

TEST(Npy, RejectsBadMagic) {
  const std::string dir = MakeTempDir();
  WriteBytes(dir + "/bad.npy", "PK\x03\x04 this is a zip file");

  absl::StatusOr<torch::Tensor> read = ReadNpy(dir + "/bad.npy");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr(dir + "/bad.npy: bad magic"));
}

TEST(Npy, RejectsFortranOrder) {
  const std::string dir = MakeTempDir();
  WriteBytes(dir + "/f.npy", NpyV1("{'descr': '|u1', 'fortran_order': True, 'shape': (2, 2), }",
                                   std::string(4, '\0')));

  absl::StatusOr<torch::Tensor> read = ReadNpy(dir + "/f.npy");
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(), HasSubstr("Fortran order"));
}

TEST(Npy, RejectsUnsupportedDtype) {
  const std::string dir = MakeTempDir();
  WriteBytes(dir + "/h.npy", NpyV1("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }",
                                   std::string(4, '\0')));

  absl::StatusOr<torch::Tensor> read = ReadNpy(dir + "/h.npy");
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(), HasSubstr("dtype '<f2' is not supported"));
}

TEST(Npy, RejectsSizeNotMatchingShape) {
  const std::string dir = MakeTempDir();
  WriteBytes(dir + "/s.npy", NpyV1("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                                   std::string(20, '\0')));

  absl::StatusOr<torch::Tensor> read = ReadNpy(dir + "/s.npy");
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(),
              HasSubstr(dir + "/s.npy: .npy data is 20 bytes, but shape (2, 3) of '<f4' needs 24"));
}

TEST(Npy, RejectsUnsupportedTensorDtypeOnWrite) {
  const std::string dir = MakeTempDir();
  const absl::Status status = WriteNpy(torch::zeros({2}, torch::kFloat16), dir + "/h.npy");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("dtype Half is not supported"));
}

TEST(Npy, MissingFileIsNotFound) {
  absl::StatusOr<torch::Tensor> read = ReadNpy(MakeTempDir() + "/missing.npy");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(), HasSubstr("missing.npy"));
}

}  // namespace
}  // namespace nearnd
