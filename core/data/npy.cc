#include "core/data/npy.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/util/status_macros.h"

namespace nearnd {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "npy.cc copies tensor memory as little-endian data");

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
// kHeaderAlignment is the multiple that magic, version, length and header add up to, so the
// data starts aligned. It is numpy's ARRAY_ALIGN.
constexpr size_t kHeaderAlignment = 64;

// NpyType is the .npy descr of a supported dtype.
struct NpyType {
  torch::ScalarType scalar_type;
  const char* descr;
};

constexpr NpyType kTypes[] = {
    {torch::kFloat32, "<f4"}, {torch::kFloat64, "<f8"}, {torch::kInt64, "<i8"},
    {torch::kInt32, "<i4"},   {torch::kUInt8, "|u1"},
};

const NpyType* FindType(torch::ScalarType scalar_type) {
  for (const NpyType& type : kTypes) {
    if (type.scalar_type == scalar_type) return &type;
  }
  return nullptr;
}

const NpyType* FindType(absl::string_view descr) {
  for (const NpyType& type : kTypes) {
    if (descr == type.descr) return &type;
  }
  return nullptr;
}

std::string SupportedDescrs() {
  std::vector<std::string> descrs;
  for (const NpyType& type : kTypes) descrs.push_back(type.descr);
  return absl::StrJoin(descrs, ", ");
}

// FormatShape writes a shape as a Python tuple: (), (3,) or (2, 3).
std::string FormatShape(torch::IntArrayRef shape) {
  if (shape.size() == 1) return absl::StrCat("(", shape[0], ",)");
  return absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
}

std::string BuildHeader(const NpyType& type, torch::IntArrayRef shape) {
  std::string header = absl::StrFormat("{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                                       type.descr, FormatShape(shape));
  // Version 1.0 preamble: magic, 2 version bytes and a 2-byte little-endian header length.
  const size_t preamble = kMagicSize + 2 + 2;
  const size_t unpadded = preamble + header.size() + 1;  // +1 for the closing newline.
  const size_t padding = (kHeaderAlignment - unpadded % kHeaderAlignment) % kHeaderAlignment;
  header.append(padding, ' ');
  header.push_back('\n');
  return header;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::NotFoundError(
        absl::StrFormat("cannot open .npy file %s: %s", path, std::strerror(errno)));
  }
  std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (file.bad()) return absl::DataLossError(absl::StrFormat("reading .npy file %s failed", path));
  return bytes;
}

// NpyHeader is what ReadNpy needs from the header dictionary.
struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

// FindValue returns the text after `'key':` in the header dictionary, or an empty view.
absl::string_view FindValue(absl::string_view header, absl::string_view key) {
  for (const char quote : {'\'', '"'}) {
    const std::string quoted = absl::StrCat(std::string(1, quote), key, std::string(1, quote));
    const size_t at = header.find(quoted);
    if (at == absl::string_view::npos) continue;
    absl::string_view rest = header.substr(at + quoted.size());
    rest = absl::StripLeadingAsciiWhitespace(rest);
    if (!absl::ConsumePrefix(&rest, ":")) return {};
    return absl::StripLeadingAsciiWhitespace(rest);
  }
  return {};
}

absl::StatusOr<NpyHeader> ParseHeader(absl::string_view header, const std::string& path) {
  NpyHeader parsed;

  absl::string_view descr = FindValue(header, "descr");
  if (descr.empty() || (descr[0] != '\'' && descr[0] != '"')) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: .npy header has no 'descr' string: %s", path, header));
  }
  const size_t descr_end = descr.find(descr[0], 1);
  if (descr_end == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: .npy header has an unterminated 'descr': %s", path, header));
  }
  parsed.descr = std::string(descr.substr(1, descr_end - 1));

  const absl::string_view fortran_order = FindValue(header, "fortran_order");
  if (absl::StartsWith(fortran_order, "True")) {
    parsed.fortran_order = true;
  } else if (!absl::StartsWith(fortran_order, "False")) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: .npy header has no 'fortran_order' True or False: %s", path, header));
  }

  absl::string_view shape = FindValue(header, "shape");
  const size_t shape_end = shape.find(')');
  if (!absl::StartsWith(shape, "(") || shape_end == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: .npy header has no 'shape' tuple: %s", path, header));
  }
  shape = shape.substr(1, shape_end - 1);
  for (absl::string_view dim : absl::StrSplit(shape, ',', absl::SkipWhitespace())) {
    int64_t value = 0;
    if (!absl::SimpleAtoi(dim, &value) || value < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: .npy shape has an invalid dimension '%s'", path, dim));
    }
    parsed.shape.push_back(value);
  }
  return parsed;
}

// SplitHeader checks the magic and version and returns the header dictionary text. `offset`
// receives where the data starts.
absl::StatusOr<absl::string_view> SplitHeader(absl::string_view bytes, const std::string& path,
                                              size_t* offset) {
  if (bytes.size() < kMagicSize + 2 ||
      bytes.substr(0, kMagicSize) != absl::string_view(kMagic, kMagicSize)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: bad magic, not a .npy file (expected the bytes \\x93NUMPY at the start)", path));
  }

  // Versions 2.0 and 3.0 differ from 1.0 only by a 4-byte header length (and 3.0 by UTF-8
  // text, which the ASCII keys parsed here do not need).
  const int major = static_cast<unsigned char>(bytes[kMagicSize]);
  const int minor = static_cast<unsigned char>(bytes[kMagicSize + 1]);
  if (major < 1 || major > 3 || minor != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: .npy version %d.%d is not supported; expected 1.0, 2.0 or 3.0", path, major, minor));
  }
  const size_t length_bytes = major == 1 ? 2 : 4;
  const size_t preamble = kMagicSize + 2 + length_bytes;
  if (bytes.size() < preamble) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: .npy file is truncated inside its preamble (%d bytes)", path, bytes.size()));
  }

  size_t header_length = 0;
  for (size_t i = 0; i < length_bytes; ++i) {
    header_length |= static_cast<size_t>(static_cast<unsigned char>(bytes[kMagicSize + 2 + i]))
                     << (8 * i);
  }
  if (bytes.size() - preamble < header_length) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: .npy header length is %d bytes but only %d follow the preamble", path,
                        header_length, bytes.size() - preamble));
  }
  *offset = preamble + header_length;
  return bytes.substr(preamble, header_length);
}

}  // namespace

absl::Status WriteNpy(const torch::Tensor& tensor, const std::string& path) {
  if (!tensor.defined()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot write %s: tensor is undefined", path));
  }
  if (!tensor.device().is_cpu()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot write %s: tensor is on %s; move it to the CPU first", path, tensor.device().str()));
  }
  const NpyType* type = FindType(tensor.scalar_type());
  if (type == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot write %s: dtype %s is not supported; convert to float32, float64, int64, int32 "
        "or uint8",
        path, c10::toString(tensor.scalar_type())));
  }

  const torch::Tensor contiguous = tensor.contiguous();
  const std::string header = BuildHeader(*type, contiguous.sizes());
  if (header.size() > UINT16_MAX) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot write %s: the .npy 1.0 header would be %d bytes, over 65535", path, header.size()));
  }

  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) {
    return absl::NotFoundError(
        absl::StrFormat("cannot create .npy file %s: %s", path, std::strerror(errno)));
  }
  const char version[2] = {1, 0};
  const char length[2] = {static_cast<char>(header.size() & 0xff),
                          static_cast<char>(header.size() >> 8)};
  file.write(kMagic, kMagicSize);
  file.write(version, sizeof(version));
  file.write(length, sizeof(length));
  file.write(header.data(), static_cast<std::streamsize>(header.size()));
  file.write(static_cast<const char*>(contiguous.data_ptr()),
             static_cast<std::streamsize>(contiguous.nbytes()));
  file.close();
  if (!file) {
    return absl::DataLossError(
        absl::StrFormat("writing .npy file %s failed: %s", path, std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<torch::Tensor> ReadNpy(const std::string& path) {
  NEARND_ASSIGN_OR_RETURN(const std::string bytes, ReadFile(path));
  return ReadNpyBytes(bytes, path);
}

absl::StatusOr<torch::Tensor> ReadNpyBytes(absl::string_view bytes, const std::string& name) {
  size_t data_offset = 0;
  NEARND_ASSIGN_OR_RETURN(const absl::string_view header_text,
                          SplitHeader(bytes, name, &data_offset));
  NEARND_ASSIGN_OR_RETURN(const NpyHeader header, ParseHeader(header_text, name));

  if (header.fortran_order) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: .npy data is in Fortran order; save it in C order (numpy.ascontiguousarray)", name));
  }
  const NpyType* type = FindType(header.descr);
  if (type == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: .npy dtype '%s' is not supported; expected one of %s", name,
                        header.descr, SupportedDescrs()));
  }

  // The size check comes before allocation, so a corrupt shape cannot request huge memory.
  uint64_t expected_size = c10::elementSize(type->scalar_type);
  bool overflow = false;
  for (int64_t dim : header.shape) {
    overflow |= __builtin_mul_overflow(expected_size, static_cast<uint64_t>(dim), &expected_size);
  }
  const size_t data_size = bytes.size() - data_offset;
  if (overflow || data_size != expected_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: .npy data is %d bytes, but shape %s of '%s' needs %s", name, data_size,
                        FormatShape(header.shape), header.descr,
                        overflow ? "more than 2^64" : absl::StrCat(expected_size)));
  }

  torch::Tensor tensor =
      torch::empty(header.shape, torch::TensorOptions().dtype(type->scalar_type));
  std::memcpy(tensor.data_ptr(), bytes.data() + data_offset, data_size);
  return tensor;
}

}  // namespace nearnd
