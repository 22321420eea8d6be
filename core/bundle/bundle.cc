#include "core/bundle/bundle.h"

#include <google/protobuf/util/json_util.h>
#include <openssl/evp.h>
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/util/status_macros.h"

namespace nearnd {
namespace {

namespace fs = std::filesystem;

// Appended to every error about a bundle that cannot be repaired in place.
constexpr char kRecreateHint[] = "re-create the bundle with `nearnd bundle`";

// Bytes read per step when hashing a file.
constexpr size_t kHashChunkBytes = 1 << 20;

struct EvpMdCtxDeleter {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, EvpMdCtxDeleter>;

std::string ToHex(const unsigned char* bytes, unsigned int length) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex(2 * length, '0');
  for (unsigned int i = 0; i < length; ++i) {
    hex[2 * i] = kDigits[bytes[i] >> 4];
    hex[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return hex;
}

// NewSha256Context returns an EVP context initialised for SHA-256, or an Internal error.
absl::StatusOr<EvpMdCtxPtr> NewSha256Context() {
  EvpMdCtxPtr context(EVP_MD_CTX_new());
  if (context == nullptr || EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("OpenSSL failed to initialise a SHA-256 digest");
  }
  return context;
}

absl::StatusOr<std::string> FinishSha256(EVP_MD_CTX* context) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest;
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(context, digest.data(), &length) != 1) {
    return absl::InternalError("OpenSSL failed to finish a SHA-256 digest");
  }
  return ToHex(digest.data(), length);
}

// CheckRelativePath rejects empty names, absolute paths and names with ".." components, which
// would leave the bundle directory.
absl::Status CheckRelativePath(const std::string& name) {
  const fs::path path(name);
  if (name.empty() || path.is_absolute()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bundle file name \"%s\" is invalid; use a non-empty path relative to the bundle", name));
  }
  for (const fs::path& part : path) {
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrFormat("bundle file name \"%s\" is invalid because it contains \"..\"", name));
    }
  }
  return absl::OkStatus();
}

// BundlePath returns `dir` without a trailing separator, so that its filename() is the bundle's
// own name.
fs::path BundlePath(const std::string& dir) {
  fs::path path = fs::path(dir).lexically_normal();
  if (!path.has_filename() && path.has_parent_path()) path = path.parent_path();
  return path;
}

// TemporaryPath returns "<dir>.tmp-<pid>-<random hex>" beside the bundle directory.
fs::path TemporaryPath(const fs::path& bundle) {
  std::random_device device;
  const uint64_t random = (static_cast<uint64_t>(device()) << 32) | device();
  std::string name = absl::StrFormat("%s.tmp-%d-%016x", bundle.filename().string(),
                                     static_cast<int>(getpid()), random);
  return bundle.parent_path() / name;
}

// TemporaryDirectory removes the directory it owns when destroyed, unless Release was called.
class TemporaryDirectory {
 public:
  explicit TemporaryDirectory(fs::path path) : path_(std::move(path)) {}
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;

  ~TemporaryDirectory() {
    if (path_.empty()) return;
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }

  const fs::path& path() const { return path_; }
  void Release() { path_.clear(); }

 private:
  fs::path path_;
};

absl::Status WriteTextFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    return absl::InternalError(absl::StrCat("failed to write ", path.string()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadTextFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("failed to open ", path.string()));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat("failed to read ", path.string()));
  }
  return text.str();
}

// CopyIntoBundle copies `source` to staging/name and returns the checksum of the copy.
absl::StatusOr<nearnd::v1::FileChecksum> CopyIntoBundle(const std::string& name,
                                                        const std::string& source,
                                                        const fs::path& staging) {
  NEARND_RETURN_IF_ERROR(CheckRelativePath(name));
  if (name == kManifestFileName) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bundle file name \"%s\" is reserved for the manifest; choose another name", name));
  }

  std::error_code error;
  if (!fs::is_regular_file(source, error)) {
    return absl::NotFoundError(
        absl::StrFormat("bundle file \"%s\": source %s is not a readable file", name, source));
  }

  const fs::path destination = staging / name;
  fs::create_directories(destination.parent_path(), error);
  if (!error) fs::copy_file(source, destination, error);
  if (error) {
    return absl::InternalError(absl::StrFormat("failed to copy %s to %s: %s", source,
                                               destination.string(), error.message()));
  }

  nearnd::v1::FileChecksum checksum;
  checksum.set_path(name);
  NEARND_ASSIGN_OR_RETURN(*checksum.mutable_sha256(), Sha256File(destination.string()));
  checksum.set_size_bytes(fs::file_size(destination));
  return checksum;
}

// ParseManifest parses manifest JSON and rejects unknown fields, because they mean that a newer
// layout wrote the bundle and this build would ignore part of it.
absl::StatusOr<nearnd::v1::Manifest> ParseManifest(const std::string& json,
                                                   const std::string& manifest_path) {
  nearnd::v1::Manifest manifest;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &manifest, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s is not a valid manifest: %s; %s",
                                                      manifest_path, std::string(status.message()),
                                                      kRecreateHint));
  }
  return manifest;
}

// VerifyFile checks one listed file's presence, size and SHA-256.
absl::Status VerifyFile(const fs::path& bundle, const nearnd::v1::FileChecksum& file) {
  const std::string bundle_name = bundle.string();
  absl::Status name_status = CheckRelativePath(file.path());
  if (!name_status.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat("bundle %s: manifest.json lists %s; %s",
                                                      bundle_name, name_status.message(),
                                                      kRecreateHint));
  }

  const fs::path path = bundle / file.path();
  std::error_code error;
  if (!fs::is_regular_file(path, error)) {
    return absl::NotFoundError(
        absl::StrFormat("bundle %s: file %s listed in manifest.json is missing; %s", bundle_name,
                        file.path(), kRecreateHint));
  }

  const uintmax_t size = fs::file_size(path, error);
  if (error || size != file.size_bytes()) {
    return absl::DataLossError(absl::StrFormat(
        "bundle %s: file %s has %d bytes but manifest.json lists %d; the file is damaged, %s",
        bundle_name, file.path(), error ? 0 : size, file.size_bytes(), kRecreateHint));
  }

  NEARND_ASSIGN_OR_RETURN(const std::string sha256, Sha256File(path.string()));
  if (sha256 != file.sha256()) {
    return absl::DataLossError(absl::StrFormat(
        "bundle %s: file %s has SHA-256 %s but manifest.json lists %s; the file is damaged, %s",
        bundle_name, file.path(), sha256, file.sha256(), kRecreateHint));
  }
  return absl::OkStatus();
}

// CheckListed requires that a file the manifest refers to (weights, module, index) has a checksum entry,
// so that no file the scorer loads escapes verification.
absl::Status CheckListed(const fs::path& bundle, const nearnd::v1::Manifest& manifest,
                         const std::string& field, const std::string& name) {
  if (name.empty()) return absl::OkStatus();
  for (const nearnd::v1::FileChecksum& file : manifest.files()) {
    if (file.path() == name) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("bundle %s: manifest.json names %s \"%s\" but lists no checksum for it; %s",
                      bundle.string(), field, name, kRecreateHint));
}

// FloatToShortestDouble widens a float through its shortest decimal form, so that a value written
// from a double such as 1e-6 reads back as that double and not as 9.99999997e-07.
double FloatToShortestDouble(float value) {
  std::array<char, 32> text{};
  const std::to_chars_result result = std::to_chars(text.data(), text.data() + text.size(), value);
  if (result.ec != std::errc()) return value;
  return std::strtod(text.data(), nullptr);
}

// RenameWithoutReplacing moves the staged bundle into place. Plain rename(2) would replace an
// empty directory created at `to` meanwhile, so RENAME_NOREPLACE makes that case an error.
absl::Status RenameWithoutReplacing(const fs::path& from, const fs::path& to) {
  int result = renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE);
  if (result != 0 && errno == EINVAL) {
    // Some file systems lack RENAME_NOREPLACE. Checking first leaves a short race, but that
    // only matters when two writers pick the same new bundle directory.
    std::error_code error;
    if (fs::exists(to, error)) {
      errno = EEXIST;
    } else {
      result = std::rename(from.c_str(), to.c_str());
    }
  }
  if (result == 0) return absl::OkStatus();

  if (errno == EEXIST || errno == ENOTEMPTY) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "bundle directory %s was created while the bundle was written; write to a new directory",
        to.string()));
  }
  return absl::InternalError(absl::StrFormat("failed to rename %s to %s: %s", from.string(),
                                             to.string(), std::strerror(errno)));
}

}  // namespace

absl::Status WriteBundle(nearnd::v1::Manifest manifest,
                         const std::map<std::string, std::string>& files, const std::string& dir) {
  const fs::path bundle = BundlePath(dir);
  std::error_code error;
  if (fs::exists(bundle, error)) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "bundle directory %s already exists; bundles are immutable, so write to a new "
        "directory or remove the old one",
        bundle.string()));
  }

  TemporaryDirectory staging(TemporaryPath(bundle));
  fs::create_directories(staging.path(), error);
  if (error) {
    return absl::InternalError(
        absl::StrFormat("failed to create %s: %s", staging.path().string(), error.message()));
  }

  manifest.set_format_version(kBundleFormatVersion);
  manifest.clear_files();
  for (const auto& [name, source] : files) {
    NEARND_ASSIGN_OR_RETURN(*manifest.add_files(), CopyIntoBundle(name, source, staging.path()));
  }

  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto print_status = google::protobuf::util::MessageToJsonString(manifest, &json, options);
  if (!print_status.ok()) {
    return absl::InternalError(absl::StrCat("failed to write the manifest as JSON: ",
                                            std::string(print_status.message())));
  }
  NEARND_RETURN_IF_ERROR(WriteTextFile(staging.path() / kManifestFileName, json));

  NEARND_RETURN_IF_ERROR(RenameWithoutReplacing(staging.path(), bundle));
  staging.Release();
  return absl::OkStatus();
}

absl::StatusOr<nearnd::v1::Manifest> ReadBundle(const std::string& dir) {
  const fs::path bundle = BundlePath(dir);
  std::error_code error;
  if (!fs::is_directory(bundle, error)) {
    return absl::NotFoundError(absl::StrFormat(
        "bundle directory %s not found; pass the directory that `nearnd bundle` wrote",
        bundle.string()));
  }

  const fs::path manifest_path = bundle / kManifestFileName;
  if (!fs::is_regular_file(manifest_path, error)) {
    return absl::NotFoundError(absl::StrFormat("bundle %s: %s is missing; %s", bundle.string(),
                                               kManifestFileName, kRecreateHint));
  }
  NEARND_ASSIGN_OR_RETURN(const std::string json, ReadTextFile(manifest_path));
  NEARND_ASSIGN_OR_RETURN(nearnd::v1::Manifest manifest,
                          ParseManifest(json, manifest_path.string()));

  if (manifest.format_version() < kOldestBundleFormatVersion ||
      manifest.format_version() > kBundleFormatVersion) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bundle %s: %s has format version %d but this build reads versions %d to %d; re-create "
        "the bundle with this build's `nearnd bundle`",
        bundle.string(), kManifestFileName, manifest.format_version(), kOldestBundleFormatVersion,
        kBundleFormatVersion));
  }

  NEARND_RETURN_IF_ERROR(
      CheckListed(bundle, manifest, "weights file", manifest.backbone().weights_file()));
  NEARND_RETURN_IF_ERROR(
      CheckListed(bundle, manifest, "module file", manifest.backbone().module_file()));
  NEARND_RETURN_IF_ERROR(CheckListed(bundle, manifest, "index file", manifest.index_file()));
  for (const nearnd::v1::FileChecksum& file : manifest.files()) {
    NEARND_RETURN_IF_ERROR(VerifyFile(bundle, file));
  }
  return manifest;
}

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrFormat("failed to open %s for hashing", path));
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(file, &std::fclose);

  NEARND_ASSIGN_OR_RETURN(EvpMdCtxPtr context, NewSha256Context());
  std::vector<unsigned char> buffer(kHashChunkBytes);
  size_t read = 0;
  while ((read = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) {
    if (EVP_DigestUpdate(context.get(), buffer.data(), read) != 1) {
      return absl::InternalError("OpenSSL failed to update a SHA-256 digest");
    }
  }
  if (std::ferror(file)) {
    return absl::DataLossError(absl::StrFormat("failed to read %s while hashing it", path));
  }
  return FinishSha256(context.get());
}

std::string Sha256Hex(absl::string_view bytes) {
  absl::StatusOr<EvpMdCtxPtr> context = NewSha256Context();
  // NOTE: OpenSSL fails here only when it cannot allocate or lacks SHA-256. This signature has
  // no way to report that, so it returns the empty string, which never equals a real digest.
  if (!context.ok()) return "";
  if (EVP_DigestUpdate(context->get(), bytes.data(), bytes.size()) != 1) return "";
  absl::StatusOr<std::string> hex = FinishSha256(context->get());
  return hex.ok() ? *hex : "";
}

nearnd::v1::Backbone BackboneFromConfig(const VitConfig& config) {
  nearnd::v1::Backbone backbone;
  backbone.set_architecture("vit");
  backbone.set_config_name(config.name);
  backbone.set_image_size(config.image_size);
  backbone.set_patch_size(config.patch_size);
  backbone.set_channels(config.channels);
  backbone.set_dim(config.dim);
  backbone.set_depth(config.depth);
  backbone.set_heads(config.heads);
  backbone.set_mlp_dim(config.mlp_dim);
  backbone.set_layer_norm_eps(static_cast<float>(config.layer_norm_eps));
  return backbone;
}

VitConfig VitConfigFromBackbone(const nearnd::v1::Backbone& backbone) {
  VitConfig config;
  config.name = backbone.config_name();
  config.image_size = static_cast<int>(backbone.image_size());
  config.patch_size = static_cast<int>(backbone.patch_size());
  config.channels = static_cast<int>(backbone.channels());
  config.dim = static_cast<int>(backbone.dim());
  config.depth = static_cast<int>(backbone.depth());
  config.heads = static_cast<int>(backbone.heads());
  config.mlp_dim = static_cast<int>(backbone.mlp_dim());
  config.layer_norm_eps = FloatToShortestDouble(backbone.layer_norm_eps());
  return config;
}

nearnd::v1::Preprocessing PreprocessingFromConfig(const PreprocessConfig& config) {
  nearnd::v1::Preprocessing preprocessing;
  preprocessing.set_resize_size(config.resize_size);
  preprocessing.set_crop_size(config.crop_size);
  preprocessing.set_channels(config.channels);
  for (float mean : config.mean) preprocessing.add_mean(mean);
  for (float std : config.std) preprocessing.add_std(std);
  return preprocessing;
}

PreprocessConfig PreprocessConfigFromPreprocessing(const nearnd::v1::Preprocessing& preprocessing) {
  PreprocessConfig config;
  config.resize_size = static_cast<int>(preprocessing.resize_size());
  config.crop_size = static_cast<int>(preprocessing.crop_size());
  config.channels = static_cast<int>(preprocessing.channels());
  config.mean.assign(preprocessing.mean().begin(), preprocessing.mean().end());
  config.std.assign(preprocessing.std().begin(), preprocessing.std().end());
  return config;
}

}  // namespace nearnd
