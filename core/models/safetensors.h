#pragma once

#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nearnd {

// SaveSafetensors writes named tensors to `path` in the safetensors format: an 8-byte
// little-endian header length, a JSON header of dtype, shape and byte offsets, then the data.
// Supports float32, float16, bfloat16, int64, int32 and uint8.
absl::Status SaveSafetensors(const std::map<std::string, torch::Tensor>& tensors,
                             const std::string& path);

// LoadSafetensors reads every tensor of a safetensors file. Errors name the file and the tensor.
absl::StatusOr<std::map<std::string, torch::Tensor>> LoadSafetensors(const std::string& path);

// SaveModuleWeights writes a module's parameters and buffers under their module names.
absl::Status SaveModuleWeights(const torch::nn::Module& module, const std::string& path);

// LoadModuleWeights copies tensors of a safetensors file into a module's parameters and
// buffers by name. Every parameter must be present with its exact shape; tensors the module
// lacks whose name starts with one of ignored_prefixes are skipped, any other is an error.
absl::Status LoadModuleWeights(torch::nn::Module& module, const std::string& path,
                               const std::vector<std::string>& ignored_prefixes = {});

// LoadTensorsIntoModule copies named tensors into a module's parameters and buffers with the
// checks of LoadModuleWeights. `source_name` names the origin of the tensors in error messages,
// which also name the tensor and, for a shape mismatch, both shapes.
absl::Status LoadTensorsIntoModule(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& tensors,
                                   const std::string& source_name,
                                   const std::vector<std::string>& ignored_prefixes = {});

// CopyNamedTensors copies tensors[name] into targets[name] for every target, with the checks
// and messages of LoadTensorsIntoModule. The targets are a model's parameters and buffers.
absl::Status CopyNamedTensors(const std::map<std::string, torch::Tensor>& targets,
                              const std::map<std::string, torch::Tensor>& tensors, const std::string& source_name,
                              const std::vector<std::string>& ignored_prefixes = {});

}  // namespace nearnd
