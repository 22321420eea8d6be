#include "core/data/preprocess.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <tuple>
#include <vector>

namespace nearnd {
namespace {

Image MakeNoiseImage(int height, int width, int channels, uint32_t seed = 7) {
  Image image{height, width, channels, {}};
  uint32_t state = seed;
  for (int i = 0; i < height * width * channels; ++i) {
    state = state * 1103515245u + 12345u;
    image.pixels.push_back(static_cast<uint8_t>(state >> 24));
  }
  return image;
}

Image MakeConstantImage(int height, int width, int channels, uint8_t level) {
  return Image{height, width, channels,
               std::vector<uint8_t>(static_cast<size_t>(height) * width * channels, level)};
}

TEST(Preprocess, SameSizeIsBitwiseNormalisation) {
  const Image image = MakeNoiseImage(28, 28, 1);
  const PreprocessConfig config;  // resize 28, crop 28, 1 channel, mean 0.5, std 0.5.

  const torch::Tensor tensor = Preprocess(image, config);
  ASSERT_EQ(tensor.sizes(), torch::IntArrayRef({1, 28, 28}));
  ASSERT_EQ(tensor.scalar_type(), torch::kFloat32);
  ASSERT_TRUE(tensor.is_contiguous());

  const float* values = tensor.data_ptr<float>();
  for (int i = 0; i < 28 * 28; ++i) {
    const float expected = (image.pixels[i] / 255.0f - 0.5f) / 0.5f;
    ASSERT_EQ(values[i], expected) << "pixel " << i;
  }
}

TEST(Preprocess, SameSizeRgbIsBitwiseNormalisationPerChannel) {
  const Image image = MakeNoiseImage(32, 32, 3);
  PreprocessConfig config;
  config.resize_size = 32;
  config.crop_size = 32;
  config.channels = 3;
  config.mean = {0.485f, 0.456f, 0.406f};
  config.std = {0.229f, 0.224f, 0.225f};

  const torch::Tensor tensor = Preprocess(image, config);
  ASSERT_EQ(tensor.sizes(), torch::IntArrayRef({3, 32, 32}));

  const float* values = tensor.data_ptr<float>();
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < 32 * 32; ++i) {
      const float expected = (image.pixels[3 * i + c] / 255.0f - config.mean[c]) / config.std[c];
      ASSERT_EQ(values[c * 32 * 32 + i], expected) << "channel " << c << " pixel " << i;
    }
  }
}

TEST(Preprocess, SameImageGivesIdenticalTensor) {
  const Image image = MakeNoiseImage(50, 70, 3);
  PreprocessConfig config;
  config.resize_size = 36;
  config.crop_size = 32;
  config.channels = 3;
  config.mean = {0.5f, 0.5f, 0.5f};
  config.std = {0.25f, 0.25f, 0.25f};

  EXPECT_TRUE(torch::equal(Preprocess(image, config), Preprocess(image, config)));
}

TEST(Preprocess, GrayToRgbReplicatesLevel) {
  const Image gray{1, 3, 1, {0, 77, 255}};
  const Image rgb = ConvertChannels(gray, 3);
  EXPECT_EQ(rgb.channels, 3);
  EXPECT_EQ(rgb.height, 1);
  EXPECT_EQ(rgb.width, 3);
  EXPECT_EQ(rgb.pixels, (std::vector<uint8_t>{0, 0, 0, 77, 77, 77, 255, 255, 255}));
}

TEST(Preprocess, RgbToGrayUsesLumaWeights) {
  // 0.299 * 255 = 76.2, 0.587 * 255 = 149.7, 0.114 * 255 = 29.1,
  // 0.299 * 10 + 0.587 * 20 + 0.114 * 30 = 18.15, and gray stays gray.
  const Image rgb{1, 5, 3, {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 200, 200, 200}};
  const Image gray = ConvertChannels(rgb, 1);
  EXPECT_EQ(gray.channels, 1);
  EXPECT_EQ(gray.pixels, (std::vector<uint8_t>{76, 150, 29, 18, 200}));
}

TEST(Preprocess, ConvertsChannelsBeforeScaling) {
  const Image rgb{1, 1, 3, {10, 20, 30}};
  PreprocessConfig config;
  config.resize_size = 1;
  config.crop_size = 1;
  config.mean = {0.0f};
  config.std = {1.0f};

  const torch::Tensor tensor = Preprocess(rgb, config);
  ASSERT_EQ(tensor.sizes(), torch::IntArrayRef({1, 1, 1}));
  EXPECT_EQ(tensor.item<float>(), 18 / 255.0f);
}

TEST(Preprocess, ResizeAndCropGiveSquareOutput) {
  PreprocessConfig config;
  config.resize_size = 32;
  config.crop_size = 28;
  config.channels = 3;
  config.mean = {0.5f, 0.5f, 0.5f};
  config.std = {0.5f, 0.5f, 0.5f};

  EXPECT_EQ(Preprocess(MakeNoiseImage(40, 60, 3), config).sizes(), torch::IntArrayRef({3, 28, 28}));
  EXPECT_EQ(Preprocess(MakeNoiseImage(60, 40, 1), config).sizes(), torch::IntArrayRef({3, 28, 28}));
  EXPECT_EQ(Preprocess(MakeNoiseImage(20, 25, 3), config).sizes(), torch::IntArrayRef({3, 28, 28}));
}

TEST(Preprocess, ConstantImageStaysConstant) {
  PreprocessConfig config;
  config.resize_size = 32;
  config.crop_size = 28;
  config.mean = {0.0f};
  config.std = {1.0f};

  // Downscaling (with antialiasing) and upscaling both average equal neighbours.
  for (const Image& image :
       {MakeConstantImage(50, 70, 1, 100), MakeConstantImage(20, 21, 1, 100)}) {
    const torch::Tensor tensor = Preprocess(image, config);
    ASSERT_EQ(tensor.sizes(), torch::IntArrayRef({1, 28, 28}));
    EXPECT_NEAR(tensor.min().item<float>(), 100 / 255.0f, 1e-5);
    EXPECT_NEAR(tensor.max().item<float>(), 100 / 255.0f, 1e-5);
  }
}

TEST(Preprocess, CentreCropKeepsMiddle) {
  // 28 rows by 40 columns: black, except columns 6..33 which are white. Resizing is skipped
  // because the shorter side is already 28, and the centre crop keeps columns 6..33.
  Image image = MakeConstantImage(28, 40, 1, 0);
  for (int y = 0; y < 28; ++y) {
    for (int x = 6; x < 34; ++x) image.pixels[y * 40 + x] = 255;
  }
  PreprocessConfig config;
  config.mean = {0.0f};
  config.std = {1.0f};

  const torch::Tensor tensor = Preprocess(image, config);
  ASSERT_EQ(tensor.sizes(), torch::IntArrayRef({1, 28, 28}));
  EXPECT_EQ(tensor.min().item<float>(), 1.0f);
}

TEST(Preprocess, DownscaleOfHalvesIsMirrorSymmetric) {
  // Left half black, right half white. Bilinear resizing treats columns symmetrically, so
  // output columns x and 27 - x add up to 1.
  Image image = MakeConstantImage(56, 56, 1, 0);
  for (int y = 0; y < 56; ++y) {
    for (int x = 28; x < 56; ++x) image.pixels[y * 56 + x] = 255;
  }
  PreprocessConfig config;
  config.mean = {0.0f};
  config.std = {1.0f};

  const torch::Tensor tensor = Preprocess(image, config);
  ASSERT_EQ(tensor.sizes(), torch::IntArrayRef({1, 28, 28}));
  EXPECT_NEAR(tensor[0][10][0].item<float>(), 0.0f, 1e-6);
  EXPECT_NEAR(tensor[0][10][27].item<float>(), 1.0f, 1e-6);
  for (int x = 0; x < 28; ++x) {
    EXPECT_NEAR(tensor[0][10][x].item<float>() + tensor[0][10][27 - x].item<float>(), 1.0f, 1e-5)
        << "column " << x;
  }
}

TEST(Preprocess, TrainingCropsAnyWindowAndFlips) {
  // A 12x12 image resized to 12 and cropped to 8: each draw is one of 5 x 5 windows of the
  // normalised image, mirrored or not, and all of them occur.
  const Image image = MakeNoiseImage(12, 12, 1);
  PreprocessConfig full;
  full.resize_size = 12;
  full.crop_size = 12;
  PreprocessConfig config = full;
  config.crop_size = 8;
  const torch::Tensor whole = Preprocess(image, full);

  torch::manual_seed(3);
  std::set<std::tuple<int, int, bool>> seen;
  for (int draw = 0; draw < 400; ++draw) {
    const torch::Tensor crop = PreprocessForTraining(image, config);
    ASSERT_EQ(crop.sizes(), (std::vector<int64_t>{1, 8, 8}));
    bool matched = false;
    for (int top = 0; top <= 4 && !matched; ++top) {
      for (int left = 0; left <= 4 && !matched; ++left) {
        const torch::Tensor window = whole.slice(1, top, top + 8).slice(2, left, left + 8);
        for (bool flipped : {false, true}) {
          if (torch::equal(crop, flipped ? window.flip({2}) : window)) {
            seen.insert({top, left, flipped});
            matched = true;
          }
        }
      }
    }
    ASSERT_TRUE(matched) << "draw " << draw << " is no window of the image";
  }
  EXPECT_EQ(seen.size(), 50u);
}

TEST(Preprocess, TrainingTransformRepeatsUnderSeed) {
  const Image image = MakeNoiseImage(40, 30, 3);
  PreprocessConfig config;
  config.resize_size = 32;
  config.crop_size = 24;
  config.channels = 3;
  config.mean = {0.5f, 0.5f, 0.5f};
  config.std = {0.5f, 0.5f, 0.5f};
  torch::manual_seed(11);
  const torch::Tensor first = PreprocessForTraining(image, config);
  torch::manual_seed(11);
  const torch::Tensor second = PreprocessForTraining(image, config);
  EXPECT_TRUE(torch::equal(first, second));
}

TEST(Preprocess, ResizeRoundsToLevels) {
  // Like Pillow, resizing yields whole 8-bit levels before normalisation.
  const Image image = MakeNoiseImage(30, 45, 3);
  PreprocessConfig config;
  config.resize_size = 20;
  config.crop_size = 20;
  config.channels = 3;
  config.mean = {0.0f, 0.0f, 0.0f};
  config.std = {1.0f, 1.0f, 1.0f};
  const torch::Tensor levels = Preprocess(image, config).mul(255.0f);
  EXPECT_LT((levels - levels.round()).abs().max().item<float>(), 1e-3f);
}

TEST(Preprocess, BatchStacksImages) {
  const std::vector<Image> images = {MakeNoiseImage(28, 28, 1, 1), MakeNoiseImage(30, 40, 1, 2),
                                     MakeNoiseImage(28, 28, 3, 3)};
  const PreprocessConfig config;

  const torch::Tensor batch = PreprocessBatch(images, 1, 3, config);
  ASSERT_EQ(batch.sizes(), torch::IntArrayRef({2, 1, 28, 28}));
  EXPECT_TRUE(torch::equal(batch[0], Preprocess(images[1], config)));
  EXPECT_TRUE(torch::equal(batch[1], Preprocess(images[2], config)));
}

TEST(Preprocess, EmptyBatchHasZeroRows) {
  const std::vector<Image> images = {MakeNoiseImage(28, 28, 1)};
  const torch::Tensor batch = PreprocessBatch(images, 1, 1, PreprocessConfig());
  EXPECT_EQ(batch.sizes(), torch::IntArrayRef({0, 1, 28, 28}));
}

TEST(Preprocess, UnitTensorRoundTripsPixels) {
  const Image image = MakeNoiseImage(16, 16, 3);
  const torch::Tensor tensor = ToUnitTensor(image, 3, 16);
  ASSERT_EQ(tensor.sizes(), torch::IntArrayRef({3, 16, 16}));
  EXPECT_GE(tensor.min().item<float>(), 0.0f);
  EXPECT_LE(tensor.max().item<float>(), 1.0f);

  const Image restored = FromUnitTensor(tensor);
  EXPECT_EQ(restored.height, 16);
  EXPECT_EQ(restored.width, 16);
  EXPECT_EQ(restored.channels, 3);
  EXPECT_EQ(restored.pixels, image.pixels);
}

TEST(Preprocess, UnitTensorResizesWithoutCropping) {
  // A 10x20 image with a white right half keeps its white right half at 8x8.
  Image image = MakeConstantImage(10, 20, 1, 0);
  for (int y = 0; y < 10; ++y) {
    for (int x = 10; x < 20; ++x) image.pixels[y * 20 + x] = 255;
  }
  const torch::Tensor tensor = ToUnitTensor(image, 1, 8);
  ASSERT_EQ(tensor.sizes(), torch::IntArrayRef({1, 8, 8}));
  EXPECT_NEAR(tensor[0][4][0].item<float>(), 0.0f, 1e-6);
  EXPECT_NEAR(tensor[0][4][7].item<float>(), 1.0f, 1e-6);
}

TEST(Preprocess, FromUnitTensorClampsAndRounds) {
  const torch::Tensor tensor =
      torch::tensor({-0.5f, 0.0f, 0.502f, 1.0f, 2.0f, 0.11f}).view({1, 2, 3});
  const Image image = FromUnitTensor(tensor);
  EXPECT_EQ(image.height, 2);
  EXPECT_EQ(image.width, 3);
  EXPECT_EQ(image.channels, 1);
  // 0.502 * 255 = 128.01 and 0.11 * 255 = 28.05.
  EXPECT_EQ(image.pixels, (std::vector<uint8_t>{0, 0, 128, 255, 255, 28}));
}

TEST(Preprocess, FromUnitTensorInterleavesChannels) {
  const torch::Tensor tensor =
      torch::stack({torch::full({1, 2}, 1.0f), torch::zeros({1, 2}), torch::full({1, 2}, 0.2f)});
  const Image image = FromUnitTensor(tensor);
  EXPECT_EQ(image.channels, 3);
  EXPECT_EQ(image.pixels, (std::vector<uint8_t>{255, 0, 51, 255, 0, 51}));
}

}  // namespace
}  // namespace nearnd
