#include "core/data/image.h"

#include <algorithm>
#include <cerrno>
#include <csetjmp>
// jpeglib.h needs size_t and FILE declared before it.
#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace nearnd {
namespace {

constexpr unsigned char kPngSignature[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
constexpr unsigned char kJpegSignature[] = {0xff, 0xd8, 0xff};

// kLibraryMessageSize bounds the error text copied out of libpng and libjpeg callbacks.
constexpr size_t kLibraryMessageSize = 256;

bool HasSignature(absl::string_view bytes, const unsigned char* signature, size_t size) {
  return bytes.size() >= size && std::memcmp(bytes.data(), signature, size) == 0;
}

std::string DescribeFirstBytes(absl::string_view bytes) {
  const size_t count = std::min<size_t>(bytes.size(), 8);
  std::vector<std::string> hex;
  for (size_t i = 0; i < count; ++i) {
    hex.push_back(absl::StrFormat("0x%02x", static_cast<unsigned char>(bytes[i])));
  }
  return absl::StrJoin(hex, " ");
}

// The libpng and libjpeg error handlers below longjmp out of the library. Each setjmp sits
// in a small C-style function whose locals are all trivially destructible, and the C++
// callers own every resource, so no destructor is ever skipped.

// ---------------------------------------------------------------------------------------
// PNG decoding with libpng.

// PngSource is the in-memory input and error record that the libpng callbacks share.
struct PngSource {
  const unsigned char* data;
  size_t size;
  size_t offset;
  bool truncated;
  char message[kLibraryMessageSize];
};

void HandlePngError(png_structp png, png_const_charp message) {
  auto* source = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(source->message, sizeof(source->message), "%s", message);
  png_longjmp(png, 1);
}

// IgnorePngWarning keeps libpng from printing warnings about ancillary chunks to stderr.
void IgnorePngWarning(png_structp, png_const_charp) {}

void ReadPngData(png_structp png, png_bytep out, size_t length) {
  auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
  if (length > source->size - source->offset) {
    source->truncated = true;
    png_error(png, "read past the end of the data");
  }
  std::memcpy(out, source->data + source->offset, length);
  source->offset += length;
}

// ReadPngHeader reads the header and sets the transforms to 8-bit gray or RGB without alpha.
// Returns false on a libpng error, whose text is then in the PngSource.
bool ReadPngHeader(png_structp png, png_infop info) {
  if (setjmp(png_jmpbuf(png))) return false;

  png_read_info(png, info);
  const int color_type = png_get_color_type(png, info);
  const int bit_depth = png_get_bit_depth(png, info);

  if (bit_depth == 16) png_set_scale_16(png);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if ((color_type & PNG_COLOR_MASK_ALPHA) != 0) png_set_strip_alpha(png);
  png_set_interlace_handling(png);

  png_read_update_info(png, info);
  return true;
}

// ReadPngRows decodes every row and reads the chunks up to IEND, so a file cut short after its
// pixel data is still reported as truncated.
bool ReadPngRows(png_structp png, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;

  png_read_image(png, rows);
  png_read_end(png, nullptr);
  return true;
}

// PngReadStructs owns the libpng read structures.
class PngReadStructs {
 public:
  explicit PngReadStructs(PngSource* source)
      : png_(png_create_read_struct(PNG_LIBPNG_VER_STRING, source, HandlePngError,
                                    IgnorePngWarning)),
        info_(png_ != nullptr ? png_create_info_struct(png_) : nullptr) {}
  ~PngReadStructs() { png_destroy_read_struct(&png_, &info_, nullptr); }
  PngReadStructs(const PngReadStructs&) = delete;
  PngReadStructs& operator=(const PngReadStructs&) = delete;

  png_structp png() const { return png_; }
  png_infop info() const { return info_; }

 private:
  png_structp png_;
  png_infop info_;
};

absl::Status PngDecodeError(const PngSource& source) {
  if (source.truncated) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "PNG data is truncated: libpng: %s (input is %d bytes); send the complete file",
        source.message, source.size));
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("PNG data is corrupt: libpng: %s", source.message));
}

absl::StatusOr<Image> DecodePng(absl::string_view bytes) {
  PngSource source{
      reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), 0, false, {}};
  PngReadStructs structs(&source);
  if (structs.png() == nullptr || structs.info() == nullptr) {
    return absl::ResourceExhaustedError("libpng could not allocate its read structures");
  }
  png_set_read_fn(structs.png(), &source, ReadPngData);

  if (!ReadPngHeader(structs.png(), structs.info())) return PngDecodeError(source);

  // libpng's own limit is 1,000,000 pixels a side, so widths up to that arrive here.
  const png_uint_32 width = png_get_image_width(structs.png(), structs.info());
  const png_uint_32 height = png_get_image_height(structs.png(), structs.info());
  if (width > kMaxImageSide || height > kMaxImageSide) {
    return absl::InvalidArgumentError(
        absl::StrFormat("PNG image is %dx%d pixels (width x height), larger than the maximum side "
                        "of %d; downscale it",
                        width, height, kMaxImageSide));
  }

  Image image;
  image.height = static_cast<int>(height);
  image.width = static_cast<int>(width);
  image.channels = png_get_channels(structs.png(), structs.info());
  if (image.channels != 1 && image.channels != 3) {
    return absl::InternalError(
        absl::StrFormat("PNG decoding produced %d channels, expected 1 or 3", image.channels));
  }
  const size_t row_bytes = static_cast<size_t>(image.width) * image.channels;
  image.pixels.resize(row_bytes * image.height);
  std::vector<png_bytep> rows(image.height);
  for (int y = 0; y < image.height; ++y) rows[y] = image.pixels.data() + y * row_bytes;

  if (!ReadPngRows(structs.png(), rows.data())) return PngDecodeError(source);
  return image;
}

// ---------------------------------------------------------------------------------------
// JPEG decoding and encoding with libjpeg(-turbo).

// JpegErrorState replaces libjpeg's default error manager, which prints and calls exit().
// `manager` must stay the first member, because libjpeg hands the callbacks a pointer to it.
struct JpegErrorState {
  jpeg_error_mgr manager;
  jmp_buf jump;
  // first_corrupt_warning is the first warning code that means the pixels are wrong
  // (truncated or corrupt entropy-coded data), or 0.
  int first_corrupt_warning;
  char message[kLibraryMessageSize];
};

static_assert(JMSG_LENGTH_MAX <= kLibraryMessageSize, "JPEG messages must fit the buffer");

void HandleJpegError(j_common_ptr cinfo) {
  auto* state = reinterpret_cast<JpegErrorState*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, state->message);
  std::longjmp(state->jump, 1);
}

// HandleJpegMessage records warnings (level -1) that mean the decoded pixels are wrong and
// drops trace messages. libjpeg keeps decoding after a warning, so DecodeJpeg checks the
// record afterwards. Other warnings, such as extraneous bytes before a marker, leave the
// pixels intact and are ignored.
void HandleJpegMessage(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  auto* state = reinterpret_cast<JpegErrorState*>(cinfo->err);
  ++cinfo->err->num_warnings;

  const int code = cinfo->err->msg_code;
  const bool corrupt = code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER ||
                       code == JWRN_HUFF_BAD_CODE || code == JWRN_MUST_RESYNC ||
                       code == JWRN_NOT_SEQUENTIAL;
  if (corrupt && state->first_corrupt_warning == 0) {
    state->first_corrupt_warning = code;
    (*cinfo->err->format_message)(cinfo, state->message);
  }
}

void InitJpegErrorState(JpegErrorState* state) {
  jpeg_std_error(&state->manager);
  state->manager.error_exit = HandleJpegError;
  state->manager.emit_message = HandleJpegMessage;
  state->first_corrupt_warning = 0;
  state->message[0] = '\0';
}

bool ReadJpegHeader(jpeg_decompress_struct* cinfo, JpegErrorState* state, const unsigned char* data,
                    unsigned long size) {
  if (setjmp(state->jump)) return false;

  jpeg_create_decompress(cinfo);
  jpeg_mem_src(cinfo, data, size);
  jpeg_read_header(cinfo, TRUE);
  return true;
}

bool StartJpegDecompress(jpeg_decompress_struct* cinfo, JpegErrorState* state,
                         J_COLOR_SPACE out_color_space) {
  if (setjmp(state->jump)) return false;

  cinfo->out_color_space = out_color_space;
  jpeg_start_decompress(cinfo);
  return true;
}

bool ReadJpegScanlines(jpeg_decompress_struct* cinfo, JpegErrorState* state, unsigned char* pixels,
                       size_t row_bytes) {
  if (setjmp(state->jump)) return false;

  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = pixels + cinfo->output_scanline * row_bytes;
    jpeg_read_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

// JpegDecompressGuard destroys a decompressor whether or not jpeg_create_decompress finished,
// because jpeg_destroy_decompress frees nothing when the memory manager was never set up.
class JpegDecompressGuard {
 public:
  explicit JpegDecompressGuard(jpeg_decompress_struct* cinfo) : cinfo_(cinfo) {}
  ~JpegDecompressGuard() { jpeg_destroy_decompress(cinfo_); }
  JpegDecompressGuard(const JpegDecompressGuard&) = delete;
  JpegDecompressGuard& operator=(const JpegDecompressGuard&) = delete;

 private:
  jpeg_decompress_struct* cinfo_;
};

absl::Status JpegDecodeError(const JpegErrorState& state) {
  if (state.first_corrupt_warning == JWRN_JPEG_EOF) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "JPEG data is truncated: libjpeg: %s; send the complete file", state.message));
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("JPEG data is corrupt: libjpeg: %s", state.message));
}

absl::StatusOr<Image> DecodeJpeg(absl::string_view bytes) {
  JpegErrorState state;
  InitJpegErrorState(&state);
  jpeg_decompress_struct cinfo;
  std::memset(&cinfo, 0, sizeof(cinfo));
  cinfo.err = &state.manager;
  JpegDecompressGuard guard(&cinfo);

  if (!ReadJpegHeader(&cinfo, &state, reinterpret_cast<const unsigned char*>(bytes.data()),
                      bytes.size())) {
    return JpegDecodeError(state);
  }
  if (cinfo.image_width > kMaxImageSide || cinfo.image_height > kMaxImageSide) {
    return absl::InvalidArgumentError(
        absl::StrFormat("JPEG image is %dx%d pixels (width x height), larger than the maximum side "
                        "of %d; downscale it",
                        cinfo.image_width, cinfo.image_height, kMaxImageSide));
  }
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    return absl::InvalidArgumentError(
        "JPEG image uses CMYK color, which is not supported; convert it to RGB or grayscale");
  }

  const J_COLOR_SPACE out_color_space =
      cinfo.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
  if (!StartJpegDecompress(&cinfo, &state, out_color_space)) return JpegDecodeError(state);

  Image image;
  image.height = static_cast<int>(cinfo.output_height);
  image.width = static_cast<int>(cinfo.output_width);
  image.channels = cinfo.output_components;
  const size_t row_bytes = static_cast<size_t>(image.width) * image.channels;
  image.pixels.resize(row_bytes * image.height);

  if (!ReadJpegScanlines(&cinfo, &state, image.pixels.data(), row_bytes)) {
    return JpegDecodeError(state);
  }
  if (state.first_corrupt_warning != 0) return JpegDecodeError(state);
  return image;
}

bool WriteJpeg(jpeg_compress_struct* cinfo, JpegErrorState* state, const Image* image, int quality,
               unsigned char** buffer, unsigned long* size) {
  if (setjmp(state->jump)) return false;

  jpeg_create_compress(cinfo);
  jpeg_mem_dest(cinfo, buffer, size);
  cinfo->image_width = static_cast<JDIMENSION>(image->width);
  cinfo->image_height = static_cast<JDIMENSION>(image->height);
  cinfo->input_components = image->channels;
  cinfo->in_color_space = image->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(cinfo);
  jpeg_set_quality(cinfo, quality, TRUE);

  jpeg_start_compress(cinfo, TRUE);
  const size_t row_bytes = static_cast<size_t>(image->width) * image->channels;
  while (cinfo->next_scanline < cinfo->image_height) {
    JSAMPROW row =
        const_cast<unsigned char*>(image->pixels.data()) + cinfo->next_scanline * row_bytes;
    jpeg_write_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_compress(cinfo);
  return true;
}

}  // namespace

absl::Status ValidateImage(const Image& image) {
  if (image.channels != 1 && image.channels != 3) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "image has %d channels; expected 1 (grayscale) or 3 (RGB)", image.channels));
  }
  if (image.height <= 0 || image.width <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("image is %dx%d pixels (height x width); both must be positive",
                        image.height, image.width));
  }
  const size_t expected = static_cast<size_t>(image.height) * image.width * image.channels;
  if (image.pixels.size() != expected) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "image has %d pixel bytes, expected %d for %dx%d (height x width) with %d channels",
        image.pixels.size(), expected, image.height, image.width, image.channels));
  }
  return absl::OkStatus();
}

absl::StatusOr<Image> DecodeImage(absl::string_view bytes) {
  if (bytes.empty()) {
    return absl::InvalidArgumentError("image is empty (0 bytes); send PNG or JPEG bytes");
  }
  if (HasSignature(bytes, kPngSignature, sizeof(kPngSignature))) return DecodePng(bytes);
  if (HasSignature(bytes, kJpegSignature, sizeof(kJpegSignature))) return DecodeJpeg(bytes);
  return absl::InvalidArgumentError(absl::StrFormat(
      "unknown image format: first bytes %s; send PNG or JPEG", DescribeFirstBytes(bytes)));
}

absl::StatusOr<std::string> EncodePng(const Image& image) {
  if (absl::Status status = ValidateImage(image); !status.ok()) return status;

  // The simplified libpng API reports errors through png_image.message, with no longjmp
  // reaching this function.
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = image.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;

  png_alloc_size_t size = 0;
  if (!png_image_write_get_memory_size(png, size, /*convert_to_8_bit=*/0, image.pixels.data(),
                                       /*row_stride=*/0, /*colormap=*/nullptr)) {
    return absl::InternalError(absl::StrFormat("PNG encoding failed: libpng: %s", png.message));
  }
  std::string bytes(size, '\0');
  if (!png_image_write_to_memory(&png, bytes.data(), &size, /*convert_to_8_bit=*/0,
                                 image.pixels.data(), /*row_stride=*/0, /*colormap=*/nullptr)) {
    return absl::InternalError(absl::StrFormat("PNG encoding failed: libpng: %s", png.message));
  }
  bytes.resize(size);
  return bytes;
}

absl::StatusOr<std::string> EncodeJpeg(const Image& image, int quality) {
  if (absl::Status status = ValidateImage(image); !status.ok()) return status;
  if (quality < 1 || quality > 100) {
    return absl::InvalidArgumentError(
        absl::StrFormat("JPEG quality is %d; it must be between 1 and 100", quality));
  }

  JpegErrorState state;
  InitJpegErrorState(&state);
  jpeg_compress_struct cinfo;
  std::memset(&cinfo, 0, sizeof(cinfo));
  cinfo.err = &state.manager;
  unsigned char* buffer = nullptr;
  unsigned long size = 0;

  // NOTE: when libjpeg fails after jpeg_mem_dest, its output buffer leaks, because after a
  // buffer growth only libjpeg stores the address. With a validated image the only such
  // failure is running out of memory.
  const bool written = WriteJpeg(&cinfo, &state, &image, quality, &buffer, &size);
  jpeg_destroy_compress(&cinfo);
  if (!written) {
    return absl::InternalError(absl::StrFormat("JPEG encoding failed: libjpeg: %s", state.message));
  }

  std::string bytes(reinterpret_cast<const char*>(buffer), size);
  std::free(buffer);
  return bytes;
}

absl::StatusOr<Image> ReadImageFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::NotFoundError(absl::StrFormat("cannot open image file %s: %s; check the path",
                                               path, std::strerror(errno)));
  }
  const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (file.bad()) {
    return absl::DataLossError(absl::StrFormat("reading image file %s failed", path));
  }

  absl::StatusOr<Image> image = DecodeImage(bytes);
  if (!image.ok()) {
    return absl::Status(image.status().code(), absl::StrCat(path, ": ", image.status().message()));
  }
  return image;
}

}  // namespace nearnd
