#!/usr/bin/env bash
# Runs `nearnd pipeline --backbone vit-b16 --backbone-weights FILE.npz` end to end with a
# full-size ViT-B/16 checkpoint of random weights in Google's .npz layout, written by
# scripts/make-random-vit-npz, on a small image-folder dataset of RGB PNGs, then checks the
# bundle's manifest and that the scorer serves it.
#
# usage: vit_b16_pipeline_check.sh SOURCE_DIR NEARND_BINARY SCORER_BINARY
#
# The dataset is 3 classes of 8 training and 4 test images at 32x32, and the generator runs 4
# steps, so that the whole run takes a few minutes on 2 CPU cores. Exits 77 (skipped) when
# /usr/bin/python3 cannot import numpy and Pillow.
set -euo pipefail

if (($# != 3)); then
  echo "usage: $0 SOURCE_DIR NEARND_BINARY SCORER_BINARY" >&2
  exit 2
fi
source_dir=$1
nearnd=$2
scorer=$3

python=${PYTHON:-/usr/bin/python3}
if ! "$python" -c 'import numpy, PIL' 2>/dev/null; then
  echo "SKIP: $python cannot import numpy and PIL; install python3-numpy and python3-pil (scripts/setup) or set PYTHON" >&2
  exit 77
fi
if [[ ! -x /usr/bin/time ]]; then
  echo "FAIL: /usr/bin/time not found; install the Debian package 'time' (scripts/setup)" >&2
  exit 1
fi

work=$(mktemp -d)
scorer_pid=
cleanup() {
  if [[ -n $scorer_pid ]]; then kill "$scorer_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$python" "$source_dir/scripts/make-random-vit-npz" --config vit-b16 "$work/vit-b16.npz"

# Class c's images are a horizontal band at a class-specific height over noise, in colour.
"$python" - "$work/data" <<'EOF'
import os
import sys

import numpy as np
from PIL import Image

root = sys.argv[1]
rng = np.random.default_rng(0)
for split, count in (("train", 8), ("test", 4)):
    for label in range(3):
        folder = os.path.join(root, split, f"class_{label}")
        os.makedirs(folder)
        for i in range(count):
            pixels = rng.integers(0, 80, size=(32, 32, 3))
            pixels[4 + 9 * label:10 + 9 * label, :, label] = 230
            Image.fromarray(pixels.astype(np.uint8), "RGB").save(os.path.join(folder, f"{i}.png"))
EOF

run=$work/run
/usr/bin/time -v "$nearnd" pipeline --dataset "folder:$work/data" --normal-class 0 --out "$run" \
  --backbone vit-b16 --backbone-weights "$work/vit-b16.npz" \
  --generator-max-steps 4 --generator-check-every 4 --generator-check-samples 8 --sampler-steps 3 \
  --fakes 8 --epochs 1 --heldout-fraction 0.25 2>"$work/pipeline.log" || {
  cat "$work/pipeline.log" >&2
  echo "FAIL: nearnd pipeline with vit-b16 and a .npz checkpoint failed" >&2
  exit 1
}
grep -E "\] finetune: |Elapsed \(wall|Maximum resident" "$work/pipeline.log" || true

"$python" - "$run/bundle/manifest.json" <<'EOF'
import json
import sys

manifest = json.load(open(sys.argv[1]))
backbone, preprocessing = manifest["backbone"], manifest["preprocessing"]
checks = {
    "config name": (backbone["config_name"], "vit-b16"),
    "embedding dimension": (manifest["embedding_dim"], 768),
    "input size": (preprocessing["crop_size"], 224),
    "channels": (preprocessing["channels"], 3),
}
failed = [f"{name} is {actual}, expected {expected}" for name, (actual, expected) in checks.items()
          if actual != expected]
if not backbone["weights_source"].endswith("vit-b16.npz"):
    failed.append(f"weights source is {backbone['weights_source']}, expected the .npz file")
if failed:
    print("FAIL: bundle manifest: " + "; ".join(failed))
    sys.exit(1)
print(f"bundle: {backbone['config_name']} from {backbone['weights_source']}, threshold {manifest['threshold']['value']}")
EOF

# The scorer serves the bundle: scores of the test images through gRPC match evaluation's.
"$scorer" --bundle "$run/bundle" --host 127.0.0.1 --port 0 --metrics-port 0 2>"$work/scorer.log" &
scorer_pid=$!
for _ in $(seq 1 120); do
  if grep -q "serving nearnd.v1.NoveltyService on" "$work/scorer.log"; then break; fi
  if ! kill -0 "$scorer_pid" 2>/dev/null; then
    cat "$work/scorer.log" >&2
    echo "FAIL: the scorer exited before serving" >&2
    exit 1
  fi
  sleep 1
done
address=$(grep -o "serving nearnd.v1.NoveltyService on [0-9.:]*" "$work/scorer.log" | awk '{print $NF}')
if [[ -z $address ]]; then
  cat "$work/scorer.log" >&2
  echo "FAIL: the scorer did not report its address within 120 s" >&2
  exit 1
fi
"$nearnd" export --dataset "folder:$work/data" --normal-class 0 --split test --out "$run" 2>"$work/export.log" || {
  cat "$work/export.log" >&2
  exit 1
}
"$nearnd" score --target "$address" "$run"/test-images/*.png >"$work/served.tsv"
"$nearnd" compare --out "$run" "$work/served.tsv"
echo "PASS: vit-b16 pipeline from a .npz checkpoint, bundle served"
