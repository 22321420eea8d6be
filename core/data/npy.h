#pragma once

#include <string>

#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nearnd {

// WriteNpy writes a contiguous CPU tensor (float32, float64, int64, int32 or uint8) as a
// NumPy .npy file, version 1.0, C order, little-endian.
absl::Status WriteNpy(const torch::Tensor& tensor, const std::string& path);

// ReadNpy reads a .npy file of those dtypes in C order. Errors name the file and what is wrong
// (bad magic, Fortran order, unsupported dtype, size not matching the shape).
absl::StatusOr<torch::Tensor> ReadNpy(const std::string& path);

// ReadNpyBytes parses the contents of a .npy file held in memory, such as an entry of a .npz
// archive, with the same checks as ReadNpy. `name` identifies the data in error messages.
absl::StatusOr<torch::Tensor> ReadNpyBytes(absl::string_view bytes, const std::string& name);

}  // namespace nearnd
