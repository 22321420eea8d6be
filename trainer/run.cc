#include "trainer/run.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <glog/logging.h>
#include <google/protobuf/util/json_util.h>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/data/npy.h"
#include "core/models/checkpoint.h"
#include "core/models/safetensors.h"
#include "core/util/status_macros.h"
#include "trainer/flags.h"

namespace nearnd {
namespace {

// Seconds between two progress lines.
constexpr double kProgressIntervalSeconds = 10.0;

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrFormat("cannot open %s", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << contents;
    if (!out) return absl::PermissionDeniedError(absl::StrFormat("cannot write %s", temporary));
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) return absl::PermissionDeniedError(absl::StrFormat("cannot rename %s to %s: %s", temporary, path, error.message()));
  return absl::OkStatus();
}

template <typename Message>
absl::StatusOr<Message> ReadJsonMessage(const std::string& path) {
  NEARND_ASSIGN_OR_RETURN(std::string json, ReadFile(path));
  Message message;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &message);
  if (!status.ok()) {
    return absl::DataLossError(absl::StrFormat("%s is not valid JSON for %s: %s; delete it and re-run the step that "
                                               "writes it",
                                               path, Message::descriptor()->full_name(), status.ToString()));
  }
  return message;
}

template <typename Message>
absl::Status WriteJsonMessage(const std::string& path, const Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) return absl::InternalError(status.ToString());
  return WriteFileAtomically(path, json);
}

std::string FormatDuration(double seconds) {
  const int64_t total = static_cast<int64_t>(seconds + 0.5);
  if (total >= 3600) return absl::StrFormat("%dh%02dm", total / 3600, (total / 60) % 60);
  if (total >= 60) return absl::StrFormat("%dm%02ds", total / 60, total % 60);
  return absl::StrFormat("%ds", total);
}

}  // namespace

absl::StatusOr<RunContext> MakeRunContext() {
  RunContext context;
  NEARND_ASSIGN_OR_RETURN(context.profile, ProfileByName(absl::GetFlag(FLAGS_profile)));
  context.dataset = absl::GetFlag(FLAGS_dataset);
  context.data_dir = absl::GetFlag(FLAGS_data_dir);
  context.normal_class = absl::GetFlag(FLAGS_normal_class);
  context.seed = absl::GetFlag(FLAGS_seed);
  NEARND_RETURN_IF_ERROR(ResolveNormalization(context));

  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return absl::InvalidArgumentError("--out is empty; give the run directory, e.g. --out runs/shirt");
  context.paths = RunPaths(out);
  NEARND_RETURN_IF_ERROR(EnsureDirectory(out));

  torch::manual_seed(context.seed);
  return context;
}

absl::Status ResolveNormalization(RunContext& context) {
  const std::string normalization = absl::GetFlag(FLAGS_normalization);
  if (normalization != "backbone" && normalization != "imagenet") {
    return absl::InvalidArgumentError(
        absl::StrFormat("--normalization=%s is invalid; use backbone (the values the backbone was pretrained with) or "
                        "imagenet",
                        normalization));
  }
  context.imagenet_normalization = normalization == "imagenet";
  return absl::OkStatus();
}

int FlagOr(int value, int profile_default) { return value == -1 ? profile_default : value; }
double FlagOr(double value, double profile_default) { return value == -1 ? profile_default : value; }

absl::StatusOr<Dataset> LoadDataset(const RunContext& context, const std::string& split) {
  NEARND_ASSIGN_OR_RETURN(Dataset dataset, ReadNamedDataset(context.dataset, context.data_dir, split));
  const int classes = static_cast<int>(dataset.class_names.size());
  if (context.normal_class < 0 || context.normal_class >= classes) {
    return absl::InvalidArgumentError(absl::StrFormat("--normal-class=%d is out of range: %s has classes 0 to %d",
                                                      context.normal_class, context.dataset, classes - 1));
  }
  return dataset;
}

std::string BackboneSpec(const RunContext& context) {
  const std::string spec = absl::GetFlag(FLAGS_backbone);
  return spec.empty() ? context.profile.backbone : spec;
}

bool IsTorchScriptSpec(const std::string& spec) { return absl::StartsWith(spec, kTorchScriptPrefix); }

absl::StatusOr<std::shared_ptr<Backbone>> MakeBackbone(const RunContext& context) {
  const std::string spec = BackboneSpec(context);
  if (IsTorchScriptSpec(spec)) return LoadTorchScriptBackbone(spec.substr(std::strlen(kTorchScriptPrefix)));
  absl::StatusOr<VitConfig> config = VitConfigByName(spec);
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--backbone=%s: %s, or torchscript:PATH for a module saved with torch.jit.save", spec,
                        config.status().message()));
  }
  return MakeVitBackbone(Vit(*config));
}

absl::StatusOr<StartingBackbone> LoadStartingBackbone(const RunContext& context) {
  NEARND_ASSIGN_OR_RETURN(std::shared_ptr<Backbone> backbone, MakeBackbone(context));
  StartingBackbone starting{backbone, ""};

  const std::string path = absl::GetFlag(FLAGS_backbone_weights);
  if (IsTorchScriptSpec(BackboneSpec(context))) {
    // The module carries its pretrained weights; --backbone-weights replaces them, e.g. with the
    // weights `nearnd finetune` wrote.
    starting.weights_source = BackboneSpec(context).substr(std::strlen(kTorchScriptPrefix));
    if (path.empty()) return starting;
    if (!absl::EndsWith(path, ".safetensors")) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--backbone-weights=%s: a TorchScript backbone takes .safetensors weights with the module's parameter "
          "names, such as OUT/finetune/backbone.safetensors; .npz checkpoints are for ViT backbones",
          path));
    }
    NEARND_RETURN_IF_ERROR(LoadBackboneWeights(*backbone, path));
    starting.weights_source = path;
    return starting;
  }

  if (path.empty()) {
    const std::string pretrained = context.paths.PretrainedWeights();
    if (!std::filesystem::exists(pretrained)) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "no starting backbone: %s does not exist; run `nearnd pretrain --out %s` or pass --backbone-weights FILE",
          pretrained, context.paths.dir()));
    }
    starting.weights_source = absl::StrFormat("pretrained by nearnd on %s digits classification (%s)",
                                              absl::GetFlag(FLAGS_pretrain_dataset), pretrained);
    NEARND_RETURN_IF_ERROR(LoadBackboneWeights(*backbone, pretrained));
    return starting;
  }

  // .safetensors (timm names) or .npz (Google layout); classifier heads are ignored.
  Vit vit = backbone->vit();
  NEARND_RETURN_IF_ERROR(LoadVitCheckpoint(vit, path));
  starting.weights_source = path;
  return starting;
}

absl::StatusOr<std::shared_ptr<Backbone>> LoadFinetunedBackbone(const RunContext& context) {
  const std::string path = context.paths.FinetunedWeights();
  if (!std::filesystem::exists(path)) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s does not exist; run `nearnd finetune --out %s` first", path, context.paths.dir()));
  }
  NEARND_ASSIGN_OR_RETURN(std::shared_ptr<Backbone> backbone, MakeBackbone(context));
  NEARND_RETURN_IF_ERROR(LoadBackboneWeights(*backbone, path));
  return backbone;
}

PreprocessConfig BackbonePreprocess(const RunContext& context, const BackboneInfo& info) {
  PreprocessConfig preprocess;
  preprocess.resize_size = context.profile.resize_size * info.image_size / context.profile.crop_size;
  preprocess.crop_size = info.image_size;
  preprocess.channels = info.channels;
  preprocess.mean = info.mean;
  preprocess.std = info.std;
  if (context.imagenet_normalization) SetImageNetNormalization(info.channels, preprocess.mean, preprocess.std);
  return preprocess;
}

namespace {

// FinetuneFreezePrefixes returns the prefixes that FreezeForFinetuning freezes.
absl::StatusOr<std::vector<std::string>> FinetuneFreezePrefixes(const Backbone& backbone) {
  const std::vector<std::string> prefixes = absl::GetFlag(FLAGS_freeze);
  const int freeze_blocks = absl::GetFlag(FLAGS_freeze_blocks);
  if (std::find(prefixes.begin(), prefixes.end(), "") != prefixes.end()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--freeze=%s contains an empty prefix; give comma-separated parameter name prefixes such as conv1.,layer1.",
        absl::StrJoin(prefixes, ",")));
  }
  if (!prefixes.empty() && freeze_blocks != -1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--freeze and --freeze-blocks=%d are both given; use one: --freeze replaces --freeze-blocks", freeze_blocks));
  }
  if (!prefixes.empty()) return prefixes;
  const Vit vit = backbone.vit();
  if (vit.is_empty()) {
    if (freeze_blocks != -1) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--freeze-blocks=%d applies to ViT backbones only; freeze parts of %s with --freeze PREFIX,...",
          freeze_blocks, backbone.info().name));
    }
    return prefixes;
  }

  const int depth = vit->config().depth;
  const int blocks = FlagOr(freeze_blocks, depth / 2);
  if (blocks < 0 || blocks > depth) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--freeze-blocks=%d is outside 0..%d, the backbone's depth", blocks, depth));
  }
  return VitFreezePrefixes(blocks);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> FreezeForFinetuning(Backbone& backbone) {
  NEARND_ASSIGN_OR_RETURN(std::vector<std::string> prefixes, FinetuneFreezePrefixes(backbone));
  NEARND_RETURN_IF_ERROR(FreezeParameters(backbone, prefixes));
  return prefixes;
}

absl::StatusOr<std::vector<Image>> ReadFakes(const RunPaths& paths) {
  if (!std::filesystem::exists(paths.Fakes())) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s does not exist; run `nearnd generate --out %s` first", paths.Fakes(), paths.dir()));
  }
  NEARND_ASSIGN_OR_RETURN(torch::Tensor array, ReadNpy(paths.Fakes()));
  if (array.scalar_type() != torch::kUInt8 || array.dim() != 4) {
    return absl::DataLossError(absl::StrFormat("%s contains a %s array of %d dimensions; expected uint8 [N, C, H, W]",
                                               paths.Fakes(), c10::toString(array.scalar_type()), array.dim()));
  }
  std::vector<Image> fakes;
  fakes.reserve(array.size(0));
  for (int64_t i = 0; i < array.size(0); ++i) {
    const torch::Tensor pixels = array[i].permute({1, 2, 0}).contiguous();
    Image image;
    image.channels = static_cast<int>(array.size(1));
    image.height = static_cast<int>(array.size(2));
    image.width = static_cast<int>(array.size(3));
    image.pixels.assign(pixels.data_ptr<uint8_t>(), pixels.data_ptr<uint8_t>() + pixels.numel());
    fakes.push_back(std::move(image));
  }
  return fakes;
}

absl::StatusOr<nearnd::v1::Report> ReadReport(const RunPaths& paths) {
  if (!std::filesystem::exists(paths.Report())) return nearnd::v1::Report();
  return ReadJsonMessage<nearnd::v1::Report>(paths.Report());
}

absl::Status UpdateReport(const RunPaths& paths, const std::function<void(nearnd::v1::Report&)>& update) {
  NEARND_ASSIGN_OR_RETURN(nearnd::v1::Report report, ReadReport(paths));
  update(report);
  return WriteJsonMessage(paths.Report(), report);
}

absl::StatusOr<nearnd::v1::Threshold> ReadThreshold(const RunPaths& paths) {
  if (!std::filesystem::exists(paths.Threshold())) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s does not exist; run `nearnd index --out %s` first", paths.Threshold(), paths.dir()));
  }
  return ReadJsonMessage<nearnd::v1::Threshold>(paths.Threshold());
}

absl::Status WriteThreshold(const RunPaths& paths, const nearnd::v1::Threshold& threshold) {
  return WriteJsonMessage(paths.Threshold(), threshold);
}

absl::Status EnsureDirectory(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return absl::PermissionDeniedError(absl::StrFormat("cannot create directory %s: %s", dir, error.message()));
  return absl::OkStatus();
}

Progress::Progress(std::string step, int64_t total, std::string unit)
    : step_(std::move(step)), total_(total), unit_(std::move(unit)), start_(std::chrono::steady_clock::now()),
      last_log_(start_) {}

double Progress::ElapsedSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::Update(int64_t done, const std::string& detail) {
  const auto now = std::chrono::steady_clock::now();
  const bool finished = done >= total_;
  if (!finished && std::chrono::duration<double>(now - last_log_).count() < kProgressIntervalSeconds) return;
  last_log_ = now;

  const double elapsed = ElapsedSeconds();
  const double rate = elapsed > 0 ? done / elapsed : 0.0;
  const double left = rate > 0 ? (total_ - done) / rate : 0.0;
  LOG(INFO) << absl::StrFormat("%s: %s %d/%d%s%s | %.1f %s/s | %s left", step_, unit_, done, total_,
                               detail.empty() ? "" : " ", detail, rate, unit_, FormatDuration(left));
}

absl::Status StepTimer::Finish(const RunPaths& paths) const {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  LOG(INFO) << absl::StrFormat("%s: finished in %s", step_, FormatDuration(seconds));
  return UpdateReport(paths, [&](nearnd::v1::Report& report) { (*report.mutable_wall_seconds())[step_] = seconds; });
}

}  // namespace nearnd
