#pragma once

#include <map>
#include <string>

#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/models/vit.h"

namespace nearnd {

// LoadVitCheckpoint copies pretrained weights into `vit`, choosing the format by the extension
// of `path`:
//   .safetensors  tensors under timm's names ("blocks.0.attn.qkv.weight").
//   .npz          a Google ViT checkpoint in the Flax layout ("Transformer/encoderblock_0/...").
// Classifier tensors ("head.*" and "pre_logits.*", or "head/*" and "pre_logits/*" in .npz
// files) are ignored, and any other tensor that the model lacks is an error. When the
// checkpoint was trained at another image size, its position embeddings are resized to the
// model's patch grid by ResizePositionEmbedding. Errors name the file, the tensor and, for a
// shape mismatch, both shapes.
absl::Status LoadVitCheckpoint(Vit& vit, const std::string& path);

// ReadNpz reads every array of a NumPy .npz archive (stored or deflated zip entries), keyed by
// the entry name without its ".npy" suffix. float64 arrays become float32, and arrays of other
// dtypes than float32 are rejected.
absl::StatusOr<std::map<std::string, torch::Tensor>> ReadNpz(const std::string& path);

// ConvertGoogleVitToTimm renames and reshapes the arrays of a Google (Flax) ViT checkpoint to
// timm's names and layouts. Kernels [in, out] become weights [out, in]. The per-head query, key
// and value kernels [dim, heads, head_dim] are stacked into one qkv weight [3 * dim, dim]. The
// patch embedding kernel [p, p, C, dim] becomes a convolution weight [dim, C, p, p]. Head and
// pre-logits arrays are dropped, and any other unknown array is an error that names it.
// `source_name` names the checkpoint in errors.
absl::StatusOr<std::map<std::string, torch::Tensor>> ConvertGoogleVitToTimm(
    const std::map<std::string, torch::Tensor>& arrays, const std::string& source_name);

// ResizePositionEmbedding resamples position embeddings [1, 1 + g * g, dim] to
// [1, 1 + grid * grid, dim]. The class token row is kept, and the g x g patch grid is
// interpolated bicubically with align_corners false and antialiasing, the defaults of
// resample_abs_pos_embed in timm 0.9.
// Fails when the patch count is not a square.
absl::StatusOr<torch::Tensor> ResizePositionEmbedding(const torch::Tensor& pos_embed, int64_t grid);

}  // namespace nearnd
