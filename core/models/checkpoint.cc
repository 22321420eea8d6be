#include "core/models/checkpoint.h"

#include <zip.h>

#include <cmath>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "core/data/npy.h"
#include "core/models/safetensors.h"
#include "core/util/status_macros.h"

namespace nearnd {
namespace {

namespace F = torch::nn::functional;

// Tensors of timm classifiers that a backbone does not have.
const std::vector<std::string> kIgnoredTimmPrefixes = {"head.", "pre_logits."};

// Arrays of Google classifiers that a backbone does not have.
const std::vector<std::string> kIgnoredGooglePrefixes = {"head/", "pre_logits/"};

constexpr char kBlockPrefix[] = "Transformer/encoderblock_";
constexpr char kAttentionScope[] = "MultiHeadDotProductAttention_1/";

std::string ShapeString(torch::IntArrayRef shape) { return "[" + absl::StrJoin(shape, ", ") + "]"; }

// ---------------------------------------------------------------------------------------------
// .npz archives

struct ZipArchiveDiscarder {
  void operator()(zip_t* archive) const { zip_discard(archive); }
};
struct ZipFileCloser {
  void operator()(zip_file_t* file) const { zip_fclose(file); }
};

std::string ZipErrorString(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string message = zip_error_strerror(&error);
  zip_error_fini(&error);
  return message;
}

// ReadZipEntry returns the uncompressed bytes of entry `index`.
absl::StatusOr<std::string> ReadZipEntry(zip_t* archive, zip_uint64_t index, const zip_stat_t& stat,
                                         const std::string& path) {
  std::unique_ptr<zip_file_t, ZipFileCloser> file(zip_fopen_index(archive, index, 0));
  if (file == nullptr) {
    return absl::DataLossError(absl::StrFormat(".npz file %s: cannot open entry '%s': %s", path, stat.name,
                                               zip_strerror(archive)));
  }

  std::string bytes(stat.size, '\0');
  zip_uint64_t total = 0;
  while (total < stat.size) {
    const zip_int64_t read = zip_fread(file.get(), bytes.data() + total, stat.size - total);
    if (read < 0) {
      return absl::DataLossError(absl::StrFormat(".npz file %s: reading entry '%s' failed: %s", path, stat.name,
                                                 zip_file_strerror(file.get())));
    }
    if (read == 0) break;
    total += static_cast<zip_uint64_t>(read);
  }
  if (total != stat.size) {
    return absl::DataLossError(absl::StrFormat(
        ".npz file %s: entry '%s' ends after %d of %d bytes; the file is truncated", path, stat.name, total,
        stat.size));
  }

  // One more read reaches the end of the entry, where libzip verifies its CRC.
  char extra;
  if (zip_fread(file.get(), &extra, 1) != 0) {
    return absl::DataLossError(absl::StrFormat(".npz file %s: entry '%s' is damaged: %s", path, stat.name,
                                               zip_file_strerror(file.get())));
  }
  return bytes;
}

// ToFloat32 converts a float64 array and rejects other dtypes than float32.
absl::StatusOr<torch::Tensor> ToFloat32(const torch::Tensor& array, const std::string& name, const std::string& path) {
  if (array.scalar_type() == torch::kFloat32) return array;
  if (array.scalar_type() == torch::kFloat64) return array.to(torch::kFloat32);
  return absl::InvalidArgumentError(absl::StrFormat(".npz file %s: array '%s' has dtype %s; expected float32 or float64",
                                                    path, name, c10::toString(array.scalar_type())));
}

// ---------------------------------------------------------------------------------------------
// Google layout to timm layout

// Layout is the rearrangement that turns a Google array into its timm tensor.
enum class Layout {
  kSame,
  // A dense kernel [in, out] becomes a linear weight [out, in].
  kTranspose,
  // A patch embedding kernel [p, p, C, dim] becomes a convolution weight [dim, C, p, p].
  kConvKernel,
  // An attention output kernel [heads, head_dim, dim] becomes a linear weight [dim, heads * head_dim].
  kAttentionOutKernel,
};

struct Rename {
  const char* google;
  const char* timm;
  Layout layout;
};

// Arrays outside the encoder blocks.
constexpr Rename kTopLevelRenames[] = {
    {"embedding/kernel", "patch_embed.proj.weight", Layout::kConvKernel},
    {"embedding/bias", "patch_embed.proj.bias", Layout::kSame},
    {"cls", "cls_token", Layout::kSame},
    {"Transformer/posembed_input/pos_embedding", "pos_embed", Layout::kSame},
    {"Transformer/encoder_norm/scale", "norm.weight", Layout::kSame},
    {"Transformer/encoder_norm/bias", "norm.bias", Layout::kSame},
};

// Arrays of one encoder block, relative to "Transformer/encoderblock_<i>/" and "blocks.<i>.".
// The query, key and value arrays are stacked separately by StackQkv.
constexpr Rename kBlockRenames[] = {
    {"LayerNorm_0/scale", "norm1.weight", Layout::kSame},
    {"LayerNorm_0/bias", "norm1.bias", Layout::kSame},
    {"LayerNorm_2/scale", "norm2.weight", Layout::kSame},
    {"LayerNorm_2/bias", "norm2.bias", Layout::kSame},
    {"MultiHeadDotProductAttention_1/out/kernel", "attn.proj.weight", Layout::kAttentionOutKernel},
    {"MultiHeadDotProductAttention_1/out/bias", "attn.proj.bias", Layout::kSame},
    {"MlpBlock_3/Dense_0/kernel", "mlp.fc1.weight", Layout::kTranspose},
    {"MlpBlock_3/Dense_0/bias", "mlp.fc1.bias", Layout::kSame},
    {"MlpBlock_3/Dense_1/kernel", "mlp.fc2.weight", Layout::kTranspose},
    {"MlpBlock_3/Dense_1/bias", "mlp.fc2.bias", Layout::kSame},
};

absl::StatusOr<torch::Tensor> Rearrange(const torch::Tensor& array, Layout layout, const std::string& name,
                                        const std::string& source_name) {
  const auto wrong_rank = [&](int expected) {
    return absl::InvalidArgumentError(absl::StrFormat("weights file %s: array '%s' has shape %s; expected %d dimensions",
                                                      source_name, name, ShapeString(array.sizes()), expected));
  };
  switch (layout) {
    case Layout::kSame:
      return array;
    case Layout::kTranspose:
      if (array.dim() != 2) return wrong_rank(2);
      return array.t().contiguous();
    case Layout::kConvKernel:
      if (array.dim() != 4) return wrong_rank(4);
      return array.permute({3, 2, 0, 1}).contiguous();
    case Layout::kAttentionOutKernel:
      if (array.dim() != 3) return wrong_rank(3);
      return array.reshape({array.size(0) * array.size(1), array.size(2)}).t().contiguous();
  }
  return array;
}

// SplitBlockName parses "Transformer/encoderblock_<i>/<rest>" into i and rest.
bool SplitBlockName(absl::string_view name, int* block, absl::string_view* rest) {
  if (!absl::ConsumePrefix(&name, kBlockPrefix)) return false;
  const size_t slash = name.find('/');
  if (slash == absl::string_view::npos) return false;
  if (!absl::SimpleAtoi(name.substr(0, slash), block) || *block < 0) return false;
  *rest = name.substr(slash + 1);
  return true;
}

// StackQkv concatenates one block's query, key and value arrays, in that order, into timm's
// fused qkv weight [3 * dim, dim] and bias [3 * dim]. `parts` is keyed by "query/kernel" etc.
absl::Status StackQkv(int block, const std::map<std::string, torch::Tensor>& parts, const std::string& source_name,
                      std::map<std::string, torch::Tensor>& tensors) {
  std::vector<torch::Tensor> weights;
  std::vector<torch::Tensor> biases;
  for (const char* projection : {"query", "key", "value"}) {
    const std::string kernel_key = absl::StrCat(projection, "/kernel");
    const std::string bias_key = absl::StrCat(projection, "/bias");
    const std::string prefix = absl::StrCat(kBlockPrefix, block, "/", kAttentionScope);
    for (const std::string& key : {kernel_key, bias_key}) {
      if (parts.count(key) == 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("weights file %s is missing array '%s%s'", source_name, prefix, key));
      }
    }

    // kernel [dim, heads, head_dim] -> [heads * head_dim, dim]; bias [heads, head_dim] -> [heads * head_dim].
    const torch::Tensor& kernel = parts.at(kernel_key);
    const torch::Tensor& bias = parts.at(bias_key);
    if (kernel.dim() != 3 || bias.dim() != 2) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "weights file %s: arrays '%s%s' and '%s%s' have shapes %s and %s; expected [dim, heads, head_dim] and "
          "[heads, head_dim]",
          source_name, prefix, kernel_key, prefix, bias_key, ShapeString(kernel.sizes()), ShapeString(bias.sizes())));
    }
    weights.push_back(kernel.reshape({kernel.size(0), kernel.size(1) * kernel.size(2)}).t());
    biases.push_back(bias.reshape({-1}));
  }
  tensors[absl::StrCat("blocks.", block, ".attn.qkv.weight")] = torch::cat(weights, 0);
  tensors[absl::StrCat("blocks.", block, ".attn.qkv.bias")] = torch::cat(biases, 0);
  return absl::OkStatus();
}

// ConvertBlockArray renames one array of an encoder block, or stores a query, key or value
// array in `qkv_parts` for StackQkv.
absl::Status ConvertBlockArray(const std::string& name, int block, absl::string_view rest, const torch::Tensor& array,
                               const std::string& source_name, std::map<std::string, torch::Tensor>& tensors,
                               std::map<int, std::map<std::string, torch::Tensor>>& qkv_parts) {
  for (const Rename& rename : kBlockRenames) {
    if (rest != rename.google) continue;
    NEARND_ASSIGN_OR_RETURN(torch::Tensor tensor, Rearrange(array, rename.layout, name, source_name));
    tensors[absl::StrCat("blocks.", block, ".", rename.timm)] = std::move(tensor);
    return absl::OkStatus();
  }

  absl::string_view projection = rest;
  if (absl::ConsumePrefix(&projection, kAttentionScope)) {
    for (const char* part : {"query/kernel", "query/bias", "key/kernel", "key/bias", "value/kernel", "value/bias"}) {
      if (projection == part) {
        qkv_parts[block][part] = array;
        return absl::OkStatus();
      }
    }
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "weights file %s has unexpected array '%s' of shape %s; expected a Google ViT checkpoint in the Flax layout",
      source_name, name, ShapeString(array.sizes())));
}

// ResizeCheckpointPositions resizes the checkpoint's position embeddings in `tensors` when
// their patch grid differs from the model's. Other shape differences are left for
// LoadTensorsIntoModule to report.
absl::Status ResizeCheckpointPositions(const Vit& vit, const std::string& source_name,
                                       std::map<std::string, torch::Tensor>& tensors) {
  auto found = tensors.find("pos_embed");
  if (found == tensors.end()) return absl::OkStatus();

  const VitConfig& config = vit->config();
  const int64_t grid = config.image_size / config.patch_size;
  const torch::Tensor& pos_embed = found->second;
  if (pos_embed.dim() != 3 || pos_embed.size(2) != config.dim || pos_embed.size(1) == 1 + grid * grid) {
    return absl::OkStatus();
  }

  auto resized = ResizePositionEmbedding(pos_embed, grid);
  if (!resized.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("weights file %s: cannot resize 'pos_embed': %s", source_name, resized.status().message()));
  }
  found->second = *std::move(resized);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::map<std::string, torch::Tensor>> ReadNpz(const std::string& path) {
  int error_code = 0;
  std::unique_ptr<zip_t, ZipArchiveDiscarder> archive(zip_open(path.c_str(), ZIP_RDONLY, &error_code));
  if (archive == nullptr) {
    if (error_code == ZIP_ER_NOENT) {
      return absl::NotFoundError(absl::StrFormat(".npz file %s not found", path));
    }
    return absl::DataLossError(absl::StrFormat(
        "cannot open .npz file %s: %s; the file is truncated, damaged or not a zip archive", path,
        ZipErrorString(error_code)));
  }

  std::map<std::string, torch::Tensor> arrays;
  const zip_int64_t entries = zip_get_num_entries(archive.get(), 0);
  for (zip_int64_t index = 0; index < entries; ++index) {
    zip_stat_t stat;
    zip_stat_init(&stat);
    if (zip_stat_index(archive.get(), index, 0, &stat) != 0 || (stat.valid & ZIP_STAT_NAME) == 0 ||
        (stat.valid & ZIP_STAT_SIZE) == 0) {
      return absl::DataLossError(absl::StrFormat(".npz file %s: cannot read the directory entry of member %d: %s", path,
                                                 index, zip_strerror(archive.get())));
    }
    absl::string_view name = stat.name;
    if (!absl::ConsumeSuffix(&name, ".npy")) {
      return absl::InvalidArgumentError(
          absl::StrFormat(".npz file %s: member '%s' is not a .npy array", path, stat.name));
    }

    NEARND_ASSIGN_OR_RETURN(const std::string bytes, ReadZipEntry(archive.get(), index, stat, path));
    NEARND_ASSIGN_OR_RETURN(torch::Tensor array, ReadNpyBytes(bytes, absl::StrCat(path, ": ", stat.name)));
    NEARND_ASSIGN_OR_RETURN(arrays[std::string(name)], ToFloat32(array, std::string(name), path));
  }
  return arrays;
}

absl::StatusOr<std::map<std::string, torch::Tensor>> ConvertGoogleVitToTimm(
    const std::map<std::string, torch::Tensor>& arrays, const std::string& source_name) {
  std::map<std::string, torch::Tensor> tensors;
  std::map<int, std::map<std::string, torch::Tensor>> qkv_parts;

  for (const auto& [name, array] : arrays) {
    const bool ignored = std::any_of(kIgnoredGooglePrefixes.begin(), kIgnoredGooglePrefixes.end(),
                                     [&](const std::string& prefix) { return absl::StartsWith(name, prefix); });
    if (ignored) continue;

    int block = 0;
    absl::string_view rest;
    if (SplitBlockName(name, &block, &rest)) {
      NEARND_RETURN_IF_ERROR(ConvertBlockArray(name, block, rest, array, source_name, tensors, qkv_parts));
      continue;
    }

    const Rename* rename = nullptr;
    for (const Rename& candidate : kTopLevelRenames) {
      if (name == candidate.google) rename = &candidate;
    }
    if (rename == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "weights file %s has unexpected array '%s' of shape %s; expected a Google ViT checkpoint in the Flax layout",
          source_name, name, ShapeString(array.sizes())));
    }
    NEARND_ASSIGN_OR_RETURN(tensors[rename->timm], Rearrange(array, rename->layout, name, source_name));
  }

  for (const auto& [block, parts] : qkv_parts) {
    NEARND_RETURN_IF_ERROR(StackQkv(block, parts, source_name, tensors));
  }
  return tensors;
}

absl::StatusOr<torch::Tensor> ResizePositionEmbedding(const torch::Tensor& pos_embed, int64_t grid) {
  if (pos_embed.dim() != 3 || pos_embed.size(0) != 1 || pos_embed.size(1) < 2) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "position embeddings have shape %s; expected [1, 1 + patches, dim]", ShapeString(pos_embed.sizes())));
  }
  const int64_t patches = pos_embed.size(1) - 1;
  const int64_t old_grid = std::llround(std::sqrt(static_cast<double>(patches)));
  if (old_grid * old_grid != patches) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "position embeddings cover %d patches, which is not a square grid", patches));
  }
  if (old_grid == grid) return pos_embed;

  torch::NoGradGuard no_grad;
  const int64_t dim = pos_embed.size(2);
  const torch::Tensor class_token = pos_embed.slice(1, 0, 1);

  // [1, g * g, dim] -> [1, dim, g, g], the layout interpolate expects, and back. Antialiasing
  // only changes the result when the grid shrinks.
  torch::Tensor patch_grid = pos_embed.slice(1, 1).reshape({1, old_grid, old_grid, dim}).permute({0, 3, 1, 2});
  patch_grid = F::interpolate(patch_grid.to(torch::kFloat32), F::InterpolateFuncOptions()
                                                                  .size(std::vector<int64_t>{grid, grid})
                                                                  .mode(torch::kBicubic)
                                                                  .align_corners(false)
                                                                  .antialias(true));
  patch_grid = patch_grid.permute({0, 2, 3, 1}).reshape({1, grid * grid, dim}).to(pos_embed.scalar_type());
  return torch::cat({class_token, patch_grid}, 1);
}

absl::Status LoadVitCheckpoint(Vit& vit, const std::string& path) {
  std::map<std::string, torch::Tensor> tensors;
  std::string source_name = path;
  if (absl::EndsWithIgnoreCase(path, ".safetensors")) {
    NEARND_ASSIGN_OR_RETURN(tensors, LoadSafetensors(path));
  } else if (absl::EndsWithIgnoreCase(path, ".npz")) {
    NEARND_ASSIGN_OR_RETURN(const auto arrays, ReadNpz(path));
    NEARND_ASSIGN_OR_RETURN(tensors, ConvertGoogleVitToTimm(arrays, path));
    source_name = absl::StrCat(path, " (Google layout, tensor names mapped to timm's)");
  } else {
    return absl::InvalidArgumentError(absl::StrFormat(
        "weights file %s has an unsupported extension; expected .safetensors (timm names) or .npz (Google ViT "
        "layout)",
        path));
  }

  NEARND_RETURN_IF_ERROR(ResizeCheckpointPositions(vit, source_name, tensors));
  return LoadTensorsIntoModule(*vit, tensors, source_name, kIgnoredTimmPrefixes);
}

}  // namespace nearnd
