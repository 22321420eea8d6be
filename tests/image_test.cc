#include "core/data/image.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace nearnd {
namespace {

using ::testing::HasSubstr;

// MakeImage returns a smooth gradient, which JPEG keeps well. Levels stay below 256 for
// images up to 48x48.
Image MakeImage(int height, int width, int channels) {
  Image image;
  image.height = height;
  image.width = width;
  image.channels = channels;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c) {
        image.pixels.push_back(static_cast<uint8_t>(40 + 2 * x + y + 30 * c));
      }
    }
  }
  return image;
}

// MakeNoiseImage returns pseudo-random pixels, so PNG data has no long runs to skip over.
Image MakeNoiseImage(int height, int width, int channels) {
  Image image{height, width, channels, {}};
  uint32_t state = 12345;
  for (int i = 0; i < height * width * channels; ++i) {
    state = state * 1103515245u + 12345u;
    image.pixels.push_back(static_cast<uint8_t>(state >> 24));
  }
  return image;
}

// WriteSimplePng encodes a buffer with the simplified libpng API, which can write formats
// EncodePng does not produce (alpha, 16 bits, palette).
std::string WriteSimplePng(int height, int width, png_uint_32 format, const void* buffer,
                           const void* colormap = nullptr, int colormap_entries = 0) {
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = width;
  png.height = height;
  png.format = format;
  png.colormap_entries = colormap_entries;

  png_alloc_size_t size = 0;
  EXPECT_TRUE(png_image_write_get_memory_size(png, size, 0, buffer, 0, colormap)) << png.message;
  std::string bytes(size, '\0');
  EXPECT_TRUE(png_image_write_to_memory(&png, bytes.data(), &size, 0, buffer, 0, colormap))
      << png.message;
  bytes.resize(size);
  return bytes;
}

std::string MakeTempDir() {
  static int counter = 0;
  const std::string path = testing::TempDir() + "image_test_" + std::to_string(getpid()) + "_" +
                           std::to_string(counter++);
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
  return path;
}

TEST(Image, PngRoundTripGray) {
  const Image image = MakeNoiseImage(17, 23, 1);
  absl::StatusOr<std::string> png = EncodePng(image);
  ASSERT_TRUE(png.ok()) << png.status();

  absl::StatusOr<Image> decoded = DecodeImage(*png);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->height, 17);
  EXPECT_EQ(decoded->width, 23);
  EXPECT_EQ(decoded->channels, 1);
  EXPECT_EQ(decoded->pixels, image.pixels);
}

TEST(Image, PngRoundTripRgb) {
  const Image image = MakeNoiseImage(9, 31, 3);
  absl::StatusOr<std::string> png = EncodePng(image);
  ASSERT_TRUE(png.ok()) << png.status();

  absl::StatusOr<Image> decoded = DecodeImage(*png);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->height, 9);
  EXPECT_EQ(decoded->width, 31);
  EXPECT_EQ(decoded->channels, 3);
  EXPECT_EQ(decoded->pixels, image.pixels);
}

TEST(Image, JpegDecodeIsCloseToInput) {
  for (const int channels : {1, 3}) {
    SCOPED_TRACE(channels);
    const Image image = MakeImage(32, 48, channels);
    absl::StatusOr<std::string> jpeg = EncodeJpeg(image, 95);
    ASSERT_TRUE(jpeg.ok()) << jpeg.status();

    absl::StatusOr<Image> decoded = DecodeImage(*jpeg);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->height, 32);
    EXPECT_EQ(decoded->width, 48);
    EXPECT_EQ(decoded->channels, channels);
    ASSERT_EQ(decoded->pixels.size(), image.pixels.size());

    double total_error = 0.0;
    int max_error = 0;
    for (size_t i = 0; i < image.pixels.size(); ++i) {
      const int error = std::abs(decoded->pixels[i] - image.pixels[i]);
      total_error += error;
      max_error = std::max(max_error, error);
    }
    EXPECT_LT(total_error / image.pixels.size(), 3.0);
    EXPECT_LE(max_error, 40);
  }
}

TEST(Image, EncodeJpegRejectsQualityOutOfRange) {
  absl::StatusOr<std::string> jpeg = EncodeJpeg(MakeImage(4, 4, 1), 0);
  ASSERT_FALSE(jpeg.ok());
  EXPECT_EQ(jpeg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(jpeg.status().message(), HasSubstr("quality is 0"));
}

TEST(Image, EncodePngRejectsWrongPixelCount) {
  Image image = MakeImage(4, 4, 3);
  image.pixels.pop_back();
  absl::StatusOr<std::string> png = EncodePng(image);
  ASSERT_FALSE(png.ok());
  EXPECT_EQ(png.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(png.status().message(), HasSubstr("47 pixel bytes, expected 48"));
}

TEST(Image, CorruptPngIsRejected) {
  absl::StatusOr<std::string> png = EncodePng(MakeNoiseImage(32, 32, 3));
  ASSERT_TRUE(png.ok()) << png.status();
  std::string corrupt = *png;
  for (size_t i = corrupt.size() / 2; i < corrupt.size() / 2 + 8; ++i) corrupt[i] ^= 0x5a;

  absl::StatusOr<Image> decoded = DecodeImage(corrupt);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(), HasSubstr("PNG data is corrupt: libpng: "));
}

TEST(Image, TruncatedPngIsRejected) {
  absl::StatusOr<std::string> png = EncodePng(MakeNoiseImage(32, 32, 3));
  ASSERT_TRUE(png.ok()) << png.status();

  absl::StatusOr<Image> decoded = DecodeImage(png->substr(0, png->size() / 2));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(), HasSubstr("PNG data is truncated: libpng: "));
}

TEST(Image, PngWithoutEndChunkIsTruncated) {
  absl::StatusOr<std::string> png = EncodePng(MakeNoiseImage(8, 8, 1));
  ASSERT_TRUE(png.ok()) << png.status();

  // The IEND chunk is the last 12 bytes, so every pixel is still there.
  absl::StatusOr<Image> decoded = DecodeImage(png->substr(0, png->size() - 12));
  ASSERT_FALSE(decoded.ok());
  EXPECT_THAT(decoded.status().message(), HasSubstr("PNG data is truncated"));
}

TEST(Image, TruncatedJpegIsRejected) {
  absl::StatusOr<std::string> jpeg = EncodeJpeg(MakeNoiseImage(64, 64, 3), 90);
  ASSERT_TRUE(jpeg.ok()) << jpeg.status();

  absl::StatusOr<Image> decoded = DecodeImage(jpeg->substr(0, jpeg->size() / 2));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(), HasSubstr("JPEG data is truncated: libjpeg: "));
}

TEST(Image, JpegHeaderOnlyIsRejected) {
  absl::StatusOr<std::string> jpeg = EncodeJpeg(MakeImage(16, 16, 1), 90);
  ASSERT_TRUE(jpeg.ok()) << jpeg.status();

  absl::StatusOr<Image> decoded = DecodeImage(jpeg->substr(0, 20));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(), HasSubstr("JPEG data is"));
}

TEST(Image, EmptyInputIsRejected) {
  absl::StatusOr<Image> decoded = DecodeImage("");
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(), HasSubstr("image is empty (0 bytes)"));
}

TEST(Image, UnknownSignatureIsRejected) {
  absl::StatusOr<Image> decoded = DecodeImage(std::string("\x12\x34\x56GIF89a-more", 14));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(),
              HasSubstr("unknown image format: first bytes 0x12 0x34 0x56 0x47 0x49 0x46 0x38 "
                        "0x39; send PNG or JPEG"));
}

TEST(Image, OversizedImageIsRejected) {
  const Image wide{1, kMaxImageSide + 1, 1, std::vector<uint8_t>(kMaxImageSide + 1, 0)};
  absl::StatusOr<std::string> png = EncodePng(wide);
  ASSERT_TRUE(png.ok()) << png.status();
  absl::StatusOr<std::string> jpeg = EncodeJpeg(wide, 50);
  ASSERT_TRUE(jpeg.ok()) << jpeg.status();

  absl::StatusOr<Image> decoded = DecodeImage(*png);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      decoded.status().message(),
      HasSubstr("PNG image is 16385x1 pixels (width x height), larger than the maximum side "
                "of 16384"));

  decoded = DecodeImage(*jpeg);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      decoded.status().message(),
      HasSubstr("JPEG image is 16385x1 pixels (width x height), larger than the maximum side "
                "of 16384"));
}

TEST(Image, RgbaPngDropsAlpha) {
  // Two pixels, opaque red and fully transparent green. Alpha must not change the colour.
  const std::vector<uint8_t> rgba = {255, 0, 0, 255, 0, 200, 0, 0};
  absl::StatusOr<Image> decoded = DecodeImage(WriteSimplePng(1, 2, PNG_FORMAT_RGBA, rgba.data()));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->channels, 3);
  EXPECT_EQ(decoded->pixels, (std::vector<uint8_t>{255, 0, 0, 0, 200, 0}));
}

TEST(Image, GrayAlphaPngDropsAlpha) {
  const std::vector<uint8_t> gray_alpha = {10, 255, 90, 0, 250, 128};
  absl::StatusOr<Image> decoded =
      DecodeImage(WriteSimplePng(1, 3, PNG_FORMAT_GA, gray_alpha.data()));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->channels, 1);
  EXPECT_EQ(decoded->pixels, (std::vector<uint8_t>{10, 90, 250}));
}

TEST(Image, SixteenBitPngIsScaledToEightBits) {
  // 257 * k in 16 bits is exactly k in 8 bits.
  const std::vector<uint16_t> gray = {0, 257 * 1, 257 * 128, 65535};
  absl::StatusOr<Image> decoded =
      DecodeImage(WriteSimplePng(2, 2, PNG_FORMAT_LINEAR_Y, gray.data()));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->channels, 1);
  EXPECT_EQ(decoded->pixels, (std::vector<uint8_t>{0, 1, 128, 255}));

  const std::vector<uint16_t> rgb = {65535, 0, 257 * 7, 257 * 200, 257 * 100, 0};
  decoded = DecodeImage(WriteSimplePng(1, 2, PNG_FORMAT_LINEAR_RGB, rgb.data()));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->channels, 3);
  EXPECT_EQ(decoded->pixels, (std::vector<uint8_t>{255, 0, 7, 200, 100, 0}));
}

TEST(Image, PalettePngIsExpandedToRgb) {
  const std::vector<uint8_t> colormap = {255, 0, 0, 0, 0, 255, 30, 60, 90};
  const std::vector<uint8_t> indices = {2, 0, 1, 2};
  absl::StatusOr<Image> decoded = DecodeImage(
      WriteSimplePng(2, 2, PNG_FORMAT_RGB_COLORMAP, indices.data(), colormap.data(), 3));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->channels, 3);
  EXPECT_EQ(decoded->pixels, (std::vector<uint8_t>{30, 60, 90, 255, 0, 0, 0, 0, 255, 30, 60, 90}));
}

TEST(Image, ReadImageFileDecodesFile) {
  const Image image = MakeNoiseImage(5, 7, 3);
  absl::StatusOr<std::string> png = EncodePng(image);
  ASSERT_TRUE(png.ok()) << png.status();
  const std::string path = MakeTempDir() + "/image.png";
  std::ofstream(path, std::ios::binary) << *png;

  absl::StatusOr<Image> decoded = ReadImageFile(path);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->pixels, image.pixels);
}

TEST(Image, ReadImageFileErrorsNamePath) {
  const std::string dir = MakeTempDir();
  absl::StatusOr<Image> missing = ReadImageFile(dir + "/missing.png");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(dir + "/missing.png"));

  const std::string bad_path = dir + "/bad.png";
  std::ofstream(bad_path, std::ios::binary) << "not an image";
  absl::StatusOr<Image> bad = ReadImageFile(bad_path);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr(bad_path + ": unknown image format"));
}

}  // namespace
}  // namespace nearnd
