#pragma once

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/data/preprocess.h"
#include "core/models/vit.h"
#include "nearnd/v1/manifest.pb.h"

namespace nearnd {

// Version of the bundle layout that WriteBundle writes. Version 2 added TorchScript backbones
// and resizing rounded to 8-bit levels; ReadBundle accepts versions 1 and 2.
inline constexpr uint32_t kBundleFormatVersion = 2;
inline constexpr uint32_t kOldestBundleFormatVersion = 1;

// Name of the manifest inside a bundle directory.
inline constexpr char kManifestFileName[] = "manifest.json";

// WriteBundle creates the bundle directory `dir`: it copies each files[name] = source path to
// dir/name, records every file's SHA-256 and size in the manifest, and writes manifest.json.
// The bundle is assembled under a temporary name beside `dir` and renamed into place, so
// readers never see a partial bundle. Fails when `dir` already exists.
absl::Status WriteBundle(nearnd::v1::Manifest manifest,
                         const std::map<std::string, std::string>& files, const std::string& dir);

// ReadBundle parses dir/manifest.json and verifies the format version and the size and SHA-256
// of every file it lists. Errors name the bundle and the file that failed.
absl::StatusOr<nearnd::v1::Manifest> ReadBundle(const std::string& dir);

// Sha256File returns the lowercase hex SHA-256 of a file's contents.
absl::StatusOr<std::string> Sha256File(const std::string& path);

// Sha256Hex returns the lowercase hex SHA-256 of bytes.
std::string Sha256Hex(absl::string_view bytes);

// Conversions between the manifest and the in-memory configurations.
nearnd::v1::Backbone BackboneFromConfig(const VitConfig& config);
VitConfig VitConfigFromBackbone(const nearnd::v1::Backbone& backbone);
nearnd::v1::Preprocessing PreprocessingFromConfig(const PreprocessConfig& config);
PreprocessConfig PreprocessConfigFromPreprocessing(const nearnd::v1::Preprocessing& preprocessing);

}  // namespace nearnd
