#!/usr/bin/env bash
# Checks that `nearnd embed` computes the same ViT features as a reference forward pass built
# from PyTorch's own modules (tests/parity/vit_reference.py), on random weights and inputs.
#
# usage: check_vit_parity.sh NEARND_BINARY [--config vit-quick|vit-ti16|vit-b16|...] [--count N]
#
# Exits 0 when the maximum absolute difference of the features is at most 1e-4, 1 when it is
# larger, and 77 (skipped) when Debian's python3-torch is not installed. Set PYTHON to use
# another interpreter that has torch and numpy.
set -euo pipefail

readonly TOLERANCE=1e-4

if (($# < 1)); then
  echo "usage: $0 NEARND_BINARY [--config NAME] [--count N]" >&2
  exit 2
fi
nearnd=$1
shift
config=vit-quick
count=8
while (($# > 0)); do
  case $1 in
    --config) config=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    *) echo "$0: unknown argument '$1'; expected --config NAME or --count N" >&2; exit 2 ;;
  esac
done

# Debian's python3-torch installs into the system interpreter, which another python3 earlier
# on PATH (pyenv, a virtual environment) cannot import.
python=${PYTHON:-/usr/bin/python3}
if ! "$python" -c 'import numpy, torch' 2>/dev/null; then
  echo "SKIP: $python cannot import torch and numpy; install python3-torch (scripts/setup) or set PYTHON" >&2
  exit 77
fi

reference=$(dirname "$0")/vit_reference.py
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" "$reference" --config "$config" --count "$count" \
  --write-random-weights "$work/weights.safetensors" --write-random-inputs "$work/inputs.npy"

# Batches of 3 leave a partial last batch, so batching is exercised on both sides.
"$nearnd" embed --backbone "$config" --backbone-weights "$work/weights.safetensors" \
  --preprocessed "$work/inputs.npy" --embed-batch 3 --out "$work/nearnd.npy"
"$python" "$reference" --config "$config" --weights "$work/weights.safetensors" \
  --inputs "$work/inputs.npy" --batch 3 --out "$work/reference.npy"

"$python" - "$work/nearnd.npy" "$work/reference.npy" "$TOLERANCE" "$config" <<'EOF'
import sys

import numpy as np

nearnd_path, reference_path, tolerance, config = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
nearnd = np.load(nearnd_path)
reference = np.load(reference_path)
if nearnd.shape != reference.shape or nearnd.dtype != np.float32:
    print(f"FAIL: nearnd features are {nearnd.dtype} {nearnd.shape}, reference features are float32 "
          f"{reference.shape}")
    sys.exit(1)

difference = np.abs(nearnd.astype(np.float64) - reference.astype(np.float64))
worst_row, worst_column = np.unravel_index(np.argmax(difference), difference.shape)
print(f"{config}: {nearnd.shape[0]} images x {nearnd.shape[1]} features, max abs diff {difference.max():.3e} "
      f"(row {worst_row}, feature {worst_column}), mean abs diff {difference.mean():.3e}, "
      f"feature std {reference.std():.3f}, tolerance {tolerance:g}")
if not difference.max() <= tolerance:
    print("FAIL: nearnd's ViT features differ from the PyTorch reference beyond the tolerance")
    sys.exit(1)
EOF
