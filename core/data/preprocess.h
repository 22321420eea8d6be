#pragma once

#include <vector>

#include <torch/torch.h>

#include "core/data/image.h"

namespace nearnd {

// PreprocessConfig is how an image becomes a backbone input. The image is converted to `channels`
// channels and its shorter side resized to resize_size with bilinear interpolation. A crop_size
// square is kept: the centre one at test time, a random one in training. Pixels are scaled to
// [0, 1] and normalised per channel with mean and std. The reference recipe is resize 256, crop
// 224 for a 224 input.
struct PreprocessConfig {
  int resize_size = 28;
  int crop_size = 28;
  int channels = 1;
  std::vector<float> mean = {0.5f};
  std::vector<float> std = {0.5f};
};

// ConvertChannels converts an image to 1 or 3 channels. Gray to RGB copies the level into all
// three channels. RGB to gray uses the ITU-R 601-2 luma weights 0.299, 0.587 and 0.114 in
// 16-bit fixed point, rounded to nearest, which matches Pillow's convert("L") bitwise.
// REQUIRES: ValidateImage(image) is OK and channels is 1 or 3.
Image ConvertChannels(const Image& image, int channels);

// Preprocess turns one image into a float tensor of shape [channels, crop_size, crop_size].
// Trainer and scorer both call it, so a served image becomes the tensor evaluation saw.
torch::Tensor Preprocess(const Image& image, const PreprocessConfig& config);

// PreprocessForTraining is the train transform: Preprocess with a uniformly random crop
// position instead of the centre and a horizontal flip with probability 0.5, as torchvision's
// RandomCrop and RandomHorizontalFlip. The random numbers come from LibTorch's default
// generator, so torch::manual_seed makes them repeatable.
torch::Tensor PreprocessForTraining(const Image& image, const PreprocessConfig& config);

// PreprocessBatch stacks Preprocess over images[begin, end) into [end - begin, C, S, S].
torch::Tensor PreprocessBatch(const std::vector<Image>& images, size_t begin, size_t end,
                              const PreprocessConfig& config);

// ToUnitTensor converts an image to a float tensor [channels, size, size] in [0, 1] at a square
// size, resizing bilinearly without cropping when the image has another size. The generator
// trains on this form.
torch::Tensor ToUnitTensor(const Image& image, int channels, int size);

// FromUnitTensor converts a tensor [C, H, W] in [0, 1] (values outside are clamped) to an image.
// Pixels are round(value * 255), and NaN becomes 0.
Image FromUnitTensor(const torch::Tensor& tensor);

}  // namespace nearnd
