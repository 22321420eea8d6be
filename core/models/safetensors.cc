#include "core/models/safetensors.h"

#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace nearnd {
namespace {

// A header longer than this is treated as a damaged file rather than allocated.
constexpr uint64_t kMaxHeaderBytes = 100 << 20;

struct DtypeName {
  torch::ScalarType type;
  const char* name;
};

constexpr DtypeName kDtypes[] = {
    {torch::kFloat32, "F32"}, {torch::kFloat16, "F16"}, {torch::kBFloat16, "BF16"},
    {torch::kInt64, "I64"},   {torch::kInt32, "I32"},   {torch::kUInt8, "U8"},
    {torch::kFloat64, "F64"},
};

const char* NameOf(torch::ScalarType type) {
  for (const DtypeName& dtype : kDtypes) {
    if (dtype.type == type) return dtype.name;
  }
  return nullptr;
}

bool TypeOf(const std::string& name, torch::ScalarType* type) {
  for (const DtypeName& dtype : kDtypes) {
    if (name == dtype.name) {
      *type = dtype.type;
      return true;
    }
  }
  return false;
}

std::string ShapeString(torch::IntArrayRef shape) { return "[" + absl::StrJoin(shape, ", ") + "]"; }

// NamedTensors returns a module's parameters and buffers by their dotted names.
std::map<std::string, torch::Tensor> NamedTensors(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) tensors[item.key()] = item.value();
  for (const auto& item : module.named_buffers(/*recurse=*/true)) tensors[item.key()] = item.value();
  return tensors;
}

}  // namespace

absl::Status SaveSafetensors(const std::map<std::string, torch::Tensor>& tensors, const std::string& path) {
  nlohmann::json header = nlohmann::json::object();
  std::vector<torch::Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const char* dtype = NameOf(tensor.scalar_type());
    if (dtype == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat("tensor '%s' has dtype %s, which safetensors output does not support",
                                                        name, c10::toString(tensor.scalar_type())));
    }
    torch::Tensor data = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t bytes = data.numel() * data.element_size();
    header[name] = {{"dtype", dtype}, {"shape", data.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(std::move(data));
  }

  // The header is padded with spaces to a multiple of 8 bytes so the data is aligned.
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  const uint64_t header_size = header_text.size();

  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) return absl::PermissionDeniedError(absl::StrFormat("cannot create weights file %s", temporary));
    char size_bytes[8];
    for (int i = 0; i < 8; ++i) size_bytes[i] = static_cast<char>((header_size >> (8 * i)) & 0xff);
    out.write(size_bytes, 8);
    out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
    for (const torch::Tensor& data : contiguous) {
      out.write(static_cast<const char*>(data.data_ptr()), static_cast<std::streamsize>(data.numel() * data.element_size()));
    }
    if (!out.good()) return absl::DataLossError(absl::StrFormat("failed to write weights file %s", temporary));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat("cannot rename %s to %s: %s", temporary, path, std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, torch::Tensor>> LoadSafetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return absl::NotFoundError(absl::StrFormat("weights file %s not found or unreadable", path));
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);

  if (file_size < 8) {
    return absl::DataLossError(absl::StrFormat("weights file %s is %d bytes, too short for a safetensors header", path, file_size));
  }
  unsigned char size_bytes[8];
  in.read(reinterpret_cast<char*>(size_bytes), 8);
  uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i) header_size |= static_cast<uint64_t>(size_bytes[i]) << (8 * i);
  if (header_size > kMaxHeaderBytes || 8 + header_size > file_size) {
    return absl::DataLossError(absl::StrFormat(
        "weights file %s declares a %d-byte header but has %d bytes; the file is truncated or not safetensors", path,
        header_size, file_size));
  }

  std::string header_text(header_size, '\0');
  in.read(header_text.data(), static_cast<std::streamsize>(header_size));
  nlohmann::json header = nlohmann::json::parse(header_text, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return absl::DataLossError(absl::StrFormat("weights file %s has an invalid JSON header", path));
  }

  const uint64_t data_start = 8 + header_size;
  const uint64_t data_size = file_size - data_start;
  std::string data(data_size, '\0');
  in.read(data.data(), static_cast<std::streamsize>(data_size));
  if (!in) return absl::DataLossError(absl::StrFormat("failed to read weights file %s", path));

  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    torch::ScalarType type;
    if (!entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets") ||
        !TypeOf(entry["dtype"].get<std::string>(), &type)) {
      return absl::DataLossError(absl::StrFormat("weights file %s: tensor '%s' has an invalid or unsupported entry %s", path,
                                                 name, entry.dump()));
    }
    const std::vector<int64_t> shape = entry["shape"].get<std::vector<int64_t>>();
    const uint64_t begin = entry["data_offsets"][0].get<uint64_t>();
    const uint64_t end = entry["data_offsets"][1].get<uint64_t>();
    int64_t numel = 1;
    for (int64_t size : shape) numel *= size;
    const uint64_t expected = static_cast<uint64_t>(numel) * c10::elementSize(type);
    if (end < begin || end > data_size || end - begin != expected) {
      return absl::DataLossError(absl::StrFormat(
          "weights file %s: tensor '%s' of shape %s needs %d bytes at [%d, %d) but the data section has %d bytes; the "
          "file is truncated or damaged",
          path, name, ShapeString(shape), expected, begin, end, data_size));
    }
    torch::Tensor tensor = torch::empty(shape, torch::TensorOptions().dtype(type));
    std::memcpy(tensor.data_ptr(), data.data() + begin, expected);
    tensors[name] = std::move(tensor);
  }
  return tensors;
}

absl::Status SaveModuleWeights(const torch::nn::Module& module, const std::string& path) {
  return SaveSafetensors(NamedTensors(module), path);
}

absl::Status LoadModuleWeights(torch::nn::Module& module, const std::string& path,
                               const std::vector<std::string>& ignored_prefixes) {
  auto loaded = LoadSafetensors(path);
  if (!loaded.ok()) return loaded.status();
  return LoadTensorsIntoModule(module, *loaded, path, ignored_prefixes);
}

absl::Status LoadTensorsIntoModule(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& tensors,
                                   const std::string& source_name, const std::vector<std::string>& ignored_prefixes) {
  return CopyNamedTensors(NamedTensors(module), tensors, source_name, ignored_prefixes);
}

absl::Status CopyNamedTensors(const std::map<std::string, torch::Tensor>& targets,
                              const std::map<std::string, torch::Tensor>& tensors, const std::string& source_name,
                              const std::vector<std::string>& ignored_prefixes) {
  for (const auto& [name, tensor] : tensors) {
    if (targets.count(name) != 0) continue;
    const bool ignored = std::any_of(ignored_prefixes.begin(), ignored_prefixes.end(),
                                     [&](const std::string& prefix) { return absl::StartsWith(name, prefix); });
    if (!ignored) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "weights file %s has unexpected tensor '%s' of shape %s that the model does not have; check the backbone "
          "architecture",
          source_name, name, ShapeString(tensor.sizes())));
    }
  }

  torch::NoGradGuard no_grad;
  for (const auto& [name, target] : targets) {
    auto found = tensors.find(name);
    if (found == tensors.end()) {
      return absl::InvalidArgumentError(absl::StrFormat("weights file %s is missing tensor '%s' of shape %s",
                                                        source_name, name, ShapeString(target.sizes())));
    }
    if (found->second.sizes() != target.sizes()) {
      return absl::InvalidArgumentError(absl::StrFormat("weights file %s: tensor '%s' has shape %s but the model expects %s",
                                                        source_name, name, ShapeString(found->second.sizes()),
                                                        ShapeString(target.sizes())));
    }
    target.copy_(found->second.to(target.scalar_type()));
  }
  return absl::OkStatus();
}

}  // namespace nearnd
