#!/usr/bin/env bash
# Checks that `nearnd preprocess` makes the same backbone inputs of image files as torchvision's
# test transform (Resize 256 with Pillow's bilinear filter, CenterCrop 224, ToTensor,
# Normalize 0.5) from Debian's python3-torchvision, on PNG images that the reference script
# writes: RGB and grayscale, shrunk, enlarged and kept at size.
#
# usage: check_transform_parity.sh NEARND_BINARY
#
# Tolerance, in 8-bit levels of the resized image: at most 1 anywhere, and at most 0.01 on
# average, that is at most one value in a hundred rounded the other way. Pillow computes with
# fixed-point weights and nearnd with float ones, so a value near a half level may round either way.
# Exits 0 within the tolerance, 1 beyond it, and 77 (skipped) without python3-torchvision. Set
# PYTHON to use another interpreter that has torchvision, Pillow and numpy.
set -euo pipefail

if (($# != 1)); then
  echo "usage: $0 NEARND_BINARY" >&2
  exit 2
fi
nearnd=$1

# Debian's python3-torchvision installs into the system interpreter, which another python3
# earlier on PATH (pyenv, a virtual environment) cannot import.
python=${PYTHON:-/usr/bin/python3}
if ! "$python" -c 'import numpy, PIL, torchvision' 2>/dev/null; then
  echo "SKIP: $python cannot import torchvision; install python3-torchvision (scripts/setup) or set PYTHON" >&2
  exit 77
fi

reference=$(dirname "$0")/transform_reference.py
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" "$reference" --write-images "$work/images"
# With --profile paper, vit-b16 inputs are resized to 256 and cropped to 224, normalised with 0.5.
"$nearnd" preprocess --profile paper --backbone vit-b16 "$work/images" --out "$work/nearnd.npy"
"$python" "$reference" --inputs "$work/images" --resize 256 --crop 224 --mean 0.5 --std 0.5 \
  --out "$work/reference.npy"
"$python" "$reference" --compare "$work/nearnd.npy" "$work/reference.npy" --std 0.5 \
  --max-levels 1.0 --mean-levels 0.01
