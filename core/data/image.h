#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nearnd {

// Image is a decoded 8-bit image with interleaved channels: pixel (y, x) channel c is
// pixels[(y * width + x) * channels + c]. channels is 1 (grayscale) or 3 (RGB).
struct Image {
  int height = 0;
  int width = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;
};

// DecodeImage decodes PNG or JPEG bytes, recognised by their signature. Gray-alpha and RGBA
// PNGs lose their alpha channel; 16-bit PNGs are reduced to 8 bits; palette PNGs are expanded.
// Returns InvalidArgumentError naming the format problem for empty, truncated or unknown data.
absl::StatusOr<Image> DecodeImage(absl::string_view bytes);

// EncodePng encodes an image as PNG bytes.
absl::StatusOr<std::string> EncodePng(const Image& image);

// ReadImageFile reads and decodes one PNG or JPEG file; errors name the path.
absl::StatusOr<Image> ReadImageFile(const std::string& path);

}  // namespace nearnd
