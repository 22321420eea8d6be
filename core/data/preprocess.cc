#include "core/data/preprocess.h"

#include <glog/logging.h>

#include <cstdint>

namespace nearnd {
namespace {

// Fixed-point ITU-R 601-2 luma weights: 0.299, 0.587 and 0.114 scaled by 2^16. They sum to
// 65536, so a gray pixel keeps its level, and adding half of 2^16 rounds to nearest.
constexpr uint32_t kRedWeight = 19595;
constexpr uint32_t kGreenWeight = 38470;
constexpr uint32_t kBlueWeight = 7471;
constexpr uint32_t kHalf = 1u << 15;

// ToFloatTensor copies the pixels into a float tensor [channels, height, width] in 0..255.
torch::Tensor ToFloatTensor(const Image& image) {
  const torch::Tensor interleaved =
      torch::from_blob(const_cast<uint8_t*>(image.pixels.data()),
                       {image.height, image.width, image.channels}, torch::kUInt8);
  return interleaved.permute({2, 0, 1}).to(torch::kFloat32).contiguous();
}

// Interpolate resizes a float tensor [C, H, W] to [C, height, width] bilinearly with half-pixel
// centres, antialiased (Pillow's triangle filter widened by the shrink factor) or not.
torch::Tensor Interpolate(const torch::Tensor& tensor, int64_t height, int64_t width, bool antialias) {
  namespace F = torch::nn::functional;
  const torch::Tensor resized =
      F::interpolate(tensor.unsqueeze(0), F::InterpolateFuncOptions()
                                              .size(std::vector<int64_t>{height, width})
                                              .mode(torch::kBilinear)
                                              .align_corners(false)
                                              .antialias(antialias));
  return resized.squeeze(0).contiguous();
}

// ResizeBilinear resizes a float tensor [C, H, W] to [C, height, width]. Antialiasing is on
// when either side shrinks, as Pillow does, and a tensor already at the size is returned as
// it is, so same-size inputs pass through bitwise.
torch::Tensor ResizeBilinear(const torch::Tensor& tensor, int64_t height, int64_t width) {
  const int64_t in_height = tensor.size(1);
  const int64_t in_width = tensor.size(2);
  if (in_height == height && in_width == width) return tensor;
  return Interpolate(tensor, height, width, /*antialias=*/height < in_height || width < in_width);
}

// ResizeLikePillow resizes 8-bit levels [C, H, W] to [C, height, width] as Pillow's bilinear
// resize does, which torchvision's Resize calls on images. The width pass comes first and the
// height pass second, each with the antialiased triangle filter and rounded to 8-bit levels.
torch::Tensor ResizeLikePillow(const torch::Tensor& levels, int64_t height, int64_t width) {
  const auto pass = [](const torch::Tensor& tensor, int64_t to_height, int64_t to_width) {
    return Interpolate(tensor, to_height, to_width, /*antialias=*/true).round().clamp(0.0, 255.0);
  };
  torch::Tensor tensor = levels;
  if (tensor.size(2) != width) tensor = pass(tensor, tensor.size(1), width);
  if (tensor.size(1) != height) tensor = pass(tensor, height, width);
  return tensor.contiguous();
}

// ResizeShorterSide resizes so the shorter side becomes `size`. The longer side becomes
// floor(size * long / short), as torchvision's Resize(int) computes it.
torch::Tensor ResizeShorterSide(const torch::Tensor& levels, int64_t size) {
  const int64_t height = levels.size(1);
  const int64_t width = levels.size(2);
  if (height <= width) return ResizeLikePillow(levels, size, size * width / height);
  return ResizeLikePillow(levels, size * height / width, size);
}

// CenterCrop keeps the centred size x size square. An odd margin leaves the extra row or
// column at the bottom or right.
torch::Tensor CenterCrop(const torch::Tensor& tensor, int64_t size) {
  const int64_t top = (tensor.size(1) - size) / 2;
  const int64_t left = (tensor.size(2) - size) / 2;
  return tensor.slice(1, top, top + size).slice(2, left, left + size);
}

// Normalize scales pixel levels [C, H, W] in 0..255 to [0, 1] and normalises each channel.
// Division and subtraction, not multiplication by reciprocals, so the result is bitwise
// (pixel / 255 - mean) / std as a float computation.
torch::Tensor Normalize(const torch::Tensor& levels, const PreprocessConfig& config) {
  const torch::Tensor mean = torch::tensor(config.mean).view({config.channels, 1, 1});
  const torch::Tensor std = torch::tensor(config.std).view({config.channels, 1, 1});
  return levels.div(255.0f).sub(mean).div(std).contiguous();
}

void CheckConfig(const PreprocessConfig& config) {
  CHECK(config.channels == 1 || config.channels == 3)
      << "PreprocessConfig.channels is " << config.channels << "; expected 1 or 3";
  CHECK_EQ(config.mean.size(), static_cast<size_t>(config.channels))
      << "PreprocessConfig.mean needs one value per channel";
  CHECK_EQ(config.std.size(), static_cast<size_t>(config.channels))
      << "PreprocessConfig.std needs one value per channel";
  CHECK_GT(config.crop_size, 0) << "PreprocessConfig.crop_size must be positive";
  CHECK_LE(config.crop_size, config.resize_size)
      << "PreprocessConfig.crop_size cannot exceed resize_size";
  for (float std : config.std) CHECK_GT(std, 0.0f) << "PreprocessConfig.std must be positive";
}

void CheckImage(const Image& image) {
  const absl::Status status = ValidateImage(image);
  CHECK(status.ok()) << status;
}

}  // namespace

Image ConvertChannels(const Image& image, int channels) {
  CheckImage(image);
  CHECK(channels == 1 || channels == 3) << "channels is " << channels << "; expected 1 or 3";
  if (image.channels == channels) return image;

  Image converted;
  converted.height = image.height;
  converted.width = image.width;
  converted.channels = channels;
  const size_t pixel_count = static_cast<size_t>(image.height) * image.width;
  converted.pixels.resize(pixel_count * channels);

  for (size_t i = 0; i < pixel_count; ++i) {
    if (channels == 3) {
      const uint8_t level = image.pixels[i];
      converted.pixels[3 * i] = level;
      converted.pixels[3 * i + 1] = level;
      converted.pixels[3 * i + 2] = level;
    } else {
      const uint32_t red = image.pixels[3 * i];
      const uint32_t green = image.pixels[3 * i + 1];
      const uint32_t blue = image.pixels[3 * i + 2];
      converted.pixels[i] = static_cast<uint8_t>(
          (red * kRedWeight + green * kGreenWeight + blue * kBlueWeight + kHalf) >> 16);
    }
  }
  return converted;
}

torch::Tensor Preprocess(const Image& image, const PreprocessConfig& config) {
  CheckConfig(config);
  const torch::Tensor resized = ResizeShorterSide(ToFloatTensor(ConvertChannels(image, config.channels)),
                                                  config.resize_size);
  return Normalize(CenterCrop(resized, config.crop_size), config);
}

torch::Tensor PreprocessForTraining(const Image& image, const PreprocessConfig& config) {
  CheckConfig(config);
  const torch::Tensor resized = ResizeShorterSide(ToFloatTensor(ConvertChannels(image, config.channels)),
                                                  config.resize_size);
  const int64_t top = torch::randint(resized.size(1) - config.crop_size + 1, {1}).item<int64_t>();
  const int64_t left = torch::randint(resized.size(2) - config.crop_size + 1, {1}).item<int64_t>();
  torch::Tensor crop = resized.slice(1, top, top + config.crop_size).slice(2, left, left + config.crop_size);
  if (torch::rand({1}).item<float>() < 0.5f) crop = crop.flip({2});
  return Normalize(crop, config);
}

torch::Tensor PreprocessBatch(const std::vector<Image>& images, size_t begin, size_t end,
                              const PreprocessConfig& config) {
  CHECK_LE(begin, end) << "PreprocessBatch range is reversed";
  CHECK_LE(end, images.size()) << "PreprocessBatch range ends past the last image";
  if (begin == end) {
    CheckConfig(config);
    return torch::empty({0, config.channels, config.crop_size, config.crop_size});
  }

  std::vector<torch::Tensor> tensors;
  tensors.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) tensors.push_back(Preprocess(images[i], config));
  return torch::stack(tensors);
}

torch::Tensor ToUnitTensor(const Image& image, int channels, int size) {
  CHECK_GT(size, 0) << "ToUnitTensor size must be positive";

  const Image converted = ConvertChannels(image, channels);
  const torch::Tensor tensor = ResizeBilinear(ToFloatTensor(converted), size, size);
  return tensor.div(255.0f).contiguous();
}

Image FromUnitTensor(const torch::Tensor& tensor) {
  CHECK_EQ(tensor.dim(), 3) << "FromUnitTensor needs a tensor [C, H, W]";
  CHECK(tensor.size(0) == 1 || tensor.size(0) == 3)
      << "FromUnitTensor needs 1 or 3 channels, got " << tensor.size(0);

  // round(value * 255) makes ToUnitTensor followed by FromUnitTensor return the same pixels.
  const torch::Tensor bytes = tensor.detach()
                                  .to(torch::kCPU, torch::kFloat32)
                                  .nan_to_num(0.0)
                                  .clamp(0.0, 1.0)
                                  .mul(255.0f)
                                  .round()
                                  .to(torch::kUInt8)
                                  .permute({1, 2, 0})
                                  .contiguous();

  Image image;
  image.channels = static_cast<int>(tensor.size(0));
  image.height = static_cast<int>(tensor.size(1));
  image.width = static_cast<int>(tensor.size(2));
  image.pixels.assign(bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel());
  return image;
}

}  // namespace nearnd
