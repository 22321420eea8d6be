#!/usr/bin/python3
"""torchvision's test transform of image files, to check nearnd's preprocessing against.

--write-images DIR writes PNG test images: RGB and grayscale, photographs' smooth gradients and
edges with noise on top, at sizes that make the resize shrink, enlarge, or keep the image.
--inputs DIR --out FILE.npy applies Resize(resize) with PIL bilinear interpolation,
CenterCrop(crop), ToTensor and Normalize(mean, std) to the folder's .png files in sorted order
and writes a float32 [N, 3, crop, crop] array, the layout of `nearnd preprocess`.
--compare A.npy B.npy --std S prints the largest and mean absolute difference in 8-bit levels.

usage: transform_reference.py --write-images DIR
       transform_reference.py --inputs DIR --out FILE.npy [--resize 256] [--crop 224] [--mean 0.5] [--std 0.5]
       transform_reference.py --compare A.npy B.npy [--std 0.5] [--max-levels 1.0] [--mean-levels 0.01]
"""

import argparse
import os
import sys

import numpy as np
from PIL import Image
from torchvision import transforms

# (file name, width, height, mode): shrink both ways, enlarge, unchanged, and a gray digit size.
TEST_IMAGES = [
    ("shrink_rgb_640x480.png", 640, 480, "RGB"),
    ("shrink_rgb_300x400.png", 300, 400, "RGB"),
    ("shrink_rgb_1000x300.png", 1000, 300, "RGB"),
    ("enlarge_rgb_150x100.png", 150, 100, "RGB"),
    ("enlarge_gray_28x28.png", 28, 28, "L"),
    ("keep_rgb_256x256.png", 256, 256, "RGB"),
    ("shrink_gray_512x384.png", 512, 384, "L"),
]


def synthetic_photo(width: int, height: int, mode: str, seed: int) -> Image.Image:
    """A smooth colour gradient with a bright disc and a dark bar (sharp edges) and mild noise."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = []
    for phase in rng.uniform(0, 2 * np.pi, size=3):
        channels.append(127 + 90 * np.sin(x / width * 3 * np.pi + phase) * np.cos(y / height * 2 * np.pi))
    pixels = np.stack(channels, axis=-1)
    disc = (x - 0.6 * width) ** 2 + (y - 0.4 * height) ** 2 < (0.2 * min(width, height)) ** 2
    pixels[disc] = 235
    pixels[(np.abs(x - 0.3 * width) < 0.05 * width + 1)] *= 0.2
    pixels += rng.normal(0, 12, size=pixels.shape)
    image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")
    return image.convert(mode)


def write_images(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    for seed, (name, width, height, mode) in enumerate(TEST_IMAGES):
        synthetic_photo(width, height, mode, seed).save(os.path.join(folder, name))


def reference_inputs(folder: str, resize: int, crop: int, mean: float, std: float) -> np.ndarray:
    transform = transforms.Compose([
        transforms.Resize(resize, interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.CenterCrop(crop),
        transforms.ToTensor(),
        transforms.Normalize([mean] * 3, [std] * 3),
    ])
    names = sorted(name for name in os.listdir(folder) if name.endswith(".png"))
    inputs = [transform(Image.open(os.path.join(folder, name)).convert("RGB")).numpy() for name in names]
    return np.stack(inputs).astype(np.float32)


def compare(first: str, second: str, std: float, max_levels: float, mean_levels: float) -> int:
    a, b = np.load(first), np.load(second)
    if a.shape != b.shape:
        print(f"shapes differ: {first} {a.shape}, {second} {b.shape}")
        return 1
    # Inputs are (level / 255 - mean) / std, so a difference times std * 255 is in 8-bit levels.
    levels = np.abs(a - b) * std * 255
    status = 0
    for i in range(a.shape[0]):
        largest, average = levels[i].max(), levels[i].mean()
        # Differences are whole levels up to float32 rounding of the normalised values.
        verdict = "ok" if largest <= max_levels + 1e-3 and average <= mean_levels else "FAILED"
        status |= verdict != "ok"
        print(f"image {i}: max {largest:.4f} levels, mean {average:.4f} levels {verdict}")
    print(f"all {a.shape[0]} images: max {levels.max():.4f} levels, mean {levels.mean():.4f} levels, "
          f"{(levels > 0.5).mean():.4%} of values differ (limits: max {max_levels}, mean {mean_levels})")
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-images", metavar="DIR")
    parser.add_argument("--inputs", metavar="DIR")
    parser.add_argument("--out", metavar="FILE.npy")
    parser.add_argument("--compare", nargs=2, metavar=("A.npy", "B.npy"))
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--mean", type=float, default=0.5)
    parser.add_argument("--std", type=float, default=0.5)
    parser.add_argument("--max-levels", type=float, default=1.0)
    parser.add_argument("--mean-levels", type=float, default=0.01)
    args = parser.parse_args()

    if args.write_images:
        write_images(args.write_images)
        return 0
    if args.inputs and args.out:
        np.save(args.out, reference_inputs(args.inputs, args.resize, args.crop, args.mean, args.std))
        return 0
    if args.compare:
        return compare(args.compare[0], args.compare[1], args.std, args.max_levels, args.mean_levels)
    parser.error("give --write-images DIR, --inputs DIR --out FILE.npy, or --compare A.npy B.npy")
    return 2


if __name__ == "__main__":
    sys.exit(main())
