#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
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

// kMaxImageSide is the largest width or height DecodeImage accepts. It caps a decoded image
// at 768 MiB (16384 x 16384 RGB), whatever the compressed size.
inline constexpr int kMaxImageSide = 16384;

// ValidateImage checks that an image has 1 or 3 channels, a positive size and
// height * width * channels pixel bytes. Returns InvalidArgumentError naming the field.
absl::Status ValidateImage(const Image& image);

// DecodeImage decodes PNG or JPEG bytes, recognised by their signature. Gray-alpha and RGBA
// PNGs lose their alpha channel; 16-bit PNGs are reduced to 8 bits; palette PNGs are expanded.
// Returns InvalidArgumentError naming the format problem for empty, truncated or unknown data.
// Grayscale PNGs and JPEGs decode to 1 channel, everything else to 3. Images wider or
// taller than kMaxImageSide, and CMYK JPEGs, are rejected with InvalidArgumentError.
absl::StatusOr<Image> DecodeImage(absl::string_view bytes);

// EncodePng encodes an image as PNG bytes.
absl::StatusOr<std::string> EncodePng(const Image& image);

// EncodeJpeg encodes an image as baseline JPEG bytes with 4:2:0 chroma subsampling for RGB.
// quality is the libjpeg quality from 1 (smallest) to 100 (best). JPEG is lossy, so decoding
// returns pixels close to, not equal to, the input.
absl::StatusOr<std::string> EncodeJpeg(const Image& image, int quality);

// ReadImageFile reads and decodes one PNG or JPEG file; errors name the path.
absl::StatusOr<Image> ReadImageFile(const std::string& path);

}  // namespace nearnd
