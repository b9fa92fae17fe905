// PNG reading and writing (libpng) and the float -> uint8 conversion diffusers applies to its outputs.
//
// Layout convention: images are uint8 tensors [3,H,W] (channels first, RGB) on the CPU.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace diffbench {

// Writes an 8-bit RGB PNG. `image` is uint8 [3,H,W] (CHW, the primary layout) or [H,W,3] (HWC,
// recognised when the first dimension is not 3). Any device and stride is accepted. The file is
// written under a temporary name in the same folder and renamed into place, so readers never see a
// half-written image. The parent folder must exist.
// Throws UsageError for a tensor of the wrong dtype/shape, InputError when the file cannot be
// created, RuntimeFailure when writing fails part-way (e.g. a full disk).
// `zlib_level` 0-9 trades size for speed (-1: zlib's default, 6).
void write_png(const std::filesystem::path& file, const at::Tensor& image, int zlib_level = -1);

// The image sequence every command writes (generate's --out, eval's baseline/ and candidate/) and
// the report links: image i of a batch is "NNNNNN.png", i zero-padded to six digits.
std::string png_sequence_name(size_t index);
// Writes `images` (uint8 [N,3,H,W]) as dir/000000.png, dir/000001.png, ..., creating `dir`.
// The images are encoded on several threads (write_pngs).
void write_png_sequence(const std::filesystem::path& dir, const at::Tensor& images);
// write_png of images[i] to files[i] for every i, on up to one thread per core; the first error is
// rethrown after the others finished (files already written stay).
void write_pngs(const std::vector<std::filesystem::path>& files, const std::vector<at::Tensor>& images);

// float images in [0,1], [3,H,W] or [B,3,H,W] -> uint8 of the same shape, as diffusers'
// numpy_to_pil: clamp to [0,1], then round(x * 255) in float32 with ties to even (numpy's round).
at::Tensor to_uint8(const at::Tensor& image01);

// Reads a PNG as uint8 [3,H,W] RGB, the pixels Pillow's Image.open(f).convert("RGB") gives:
// grey is replicated, palettes are expanded, alpha (and tRNS transparency) is dropped without
// compositing, 1/2/4-bit grey is scaled to 0..255, and 16-bit samples keep their high byte (Pillow
// does this for 16-bit RGB, RGBA and grey+alpha; for 16-bit grey without alpha Pillow instead clips
// the value to 255, which we do not copy). No gamma or colour-profile conversion is applied.
// Throws InputError naming the file when it is missing, not a PNG, truncated or corrupt.
at::Tensor read_png(const std::filesystem::path& file);
// read_png of every file, on up to one thread per core, in the files' order.
std::vector<at::Tensor> read_pngs(const std::vector<std::filesystem::path>& files);

// The regular files in `dir` whose extension is .png (any case), sorted by file name (byte order).
// Throws InputError when `dir` is not a readable folder.
std::vector<std::filesystem::path> list_pngs(const std::filesystem::path& dir);

}  // namespace diffbench
