#!/usr/bin/python3
"""Reference ViT forward pass built from PyTorch's own modules, to check nearnd's ViT against.

The model is a Conv2d patch embedding, a class token, learned position embeddings, pre-norm
nn.TransformerEncoderLayer blocks (exact GELU, LayerNorm eps 1e-6) and a final LayerNorm. The
feature of an image is its class token after the final LayerNorm. Weights come from a
.safetensors file with timm's parameter names, read with json and numpy only.

Modes:
  --write-random-weights FILE   write random weights for --config in timm names
  --write-random-inputs FILE    write --count random float32 inputs [N, C, H, W]
  --weights FILE --inputs FILE --out FILE
                                write the features [N, dim] of the inputs as float32 .npy
  --weights FILE --inputs FILE --train-steps N
                                time N fine-tuning steps (after one warm-up step) on the first
                                --batch inputs: the embeddings and first half of the blocks
                                frozen, a 2-way linear head, cross-entropy, SGD lr 4e-4 and
                                weight decay 5e-5, as `nearnd benchmark` does
"""

import argparse
import json
import struct
import sys
import time

import numpy as np
import torch
from torch import nn

# Named shapes: image size, patch size, channels, width, depth, heads, MLP width. The vit-*16
# and vit-b32 entries are the standard ViT Tiny, Small, Base and Large shapes at 224x224, and
# vit-quick is nearnd's small CPU backbone for 28x28 grayscale images.
CONFIGS = {
    "vit-quick": (28, 7, 1, 128, 4, 4, 256),
    "vit-ti16": (224, 16, 3, 192, 12, 3, 768),
    "vit-s16": (224, 16, 3, 384, 12, 6, 1536),
    "vit-b16": (224, 16, 3, 768, 12, 12, 3072),
    "vit-b32": (224, 32, 3, 768, 12, 12, 3072),
    "vit-l16": (224, 16, 3, 1024, 24, 16, 4096),
}
CONFIG_FIELDS = ("image_size", "patch_size", "channels", "dim", "depth", "heads", "mlp_dim")

LAYER_NORM_EPS = 1e-6

# safetensors dtype names that numpy reads directly. BF16 is converted separately.
NUMPY_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                "U8": np.uint8}


def read_safetensors(path):
    """Read every tensor of a safetensors file into a dict of numpy arrays.

    The format is an 8-byte little-endian header length, a JSON header mapping each name to
    its dtype, shape and [begin, end) byte offsets into the data that follows.
    """
    with open(path, "rb") as file:
        contents = file.read()
    if len(contents) < 8:
        raise ValueError(f"{path}: {len(contents)} bytes is too short for a safetensors header length")
    (header_length,) = struct.unpack("<Q", contents[:8])
    if 8 + header_length > len(contents):
        raise ValueError(f"{path}: header length {header_length} exceeds the file size {len(contents)}")
    header = json.loads(contents[8:8 + header_length])
    data = memoryview(contents)[8 + header_length:]

    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = data[begin:end]
        if entry["dtype"] == "BF16":
            # bfloat16 is the upper half of a float32.
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif entry["dtype"] in NUMPY_DTYPES:
            array = np.frombuffer(raw, dtype=np.dtype(NUMPY_DTYPES[entry["dtype"]]).newbyteorder("<"))
        else:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {entry['dtype']}")
        tensors[name] = array.reshape(entry["shape"]).astype(np.float32)
    return tensors


def write_safetensors(tensors, path):
    """Write a dict of numpy float32 arrays as a safetensors file, names in sorted order."""
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        chunks.append(array.tobytes())
        offset += array.nbytes
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    # Spaces pad the header to a multiple of 8 bytes, so that the tensor data starts aligned.
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(header_bytes)))
        file.write(header_bytes)
        for chunk in chunks:
            file.write(chunk)


def random_timm_weights(config, seed):
    """Return random weights in timm names for `config`.

    Linear and convolution weights are N(0, 1 / fan_in), so activations keep their scale
    through the blocks, and LayerNorm scales and every bias are random too, so that a
    parameter loaded into the wrong place changes the features.
    """
    rng = np.random.default_rng(seed)
    dim, mlp_dim, channels, patch = config["dim"], config["mlp_dim"], config["channels"], config["patch_size"]
    tokens = (config["image_size"] // patch) ** 2 + 1

    def linear(prefix, outputs, inputs):
        return {f"{prefix}.weight": rng.normal(0, inputs ** -0.5, (outputs, inputs)),
                f"{prefix}.bias": rng.normal(0, 0.1, outputs)}

    def layer_norm(prefix):
        return {f"{prefix}.weight": 1 + rng.normal(0, 0.1, dim), f"{prefix}.bias": rng.normal(0, 0.1, dim)}

    fan_in = channels * patch * patch
    weights = {
        "patch_embed.proj.weight": rng.normal(0, fan_in ** -0.5, (dim, channels, patch, patch)),
        "patch_embed.proj.bias": rng.normal(0, 0.1, dim),
        "cls_token": rng.normal(0, 0.5, (1, 1, dim)),
        "pos_embed": rng.normal(0, 0.5, (1, tokens, dim)),
    }
    for i in range(config["depth"]):
        block = f"blocks.{i}"
        weights.update(layer_norm(f"{block}.norm1"))
        weights.update(linear(f"{block}.attn.qkv", 3 * dim, dim))
        weights.update(linear(f"{block}.attn.proj", dim, dim))
        weights.update(layer_norm(f"{block}.norm2"))
        weights.update(linear(f"{block}.mlp.fc1", mlp_dim, dim))
        weights.update(linear(f"{block}.mlp.fc2", dim, mlp_dim))
    weights.update(layer_norm("norm"))
    return {name: value.astype(np.float32) for name, value in weights.items()}


class ReferenceVit(nn.Module):
    """ViT encoder from PyTorch's modules; forward returns the class token after the final norm."""

    def __init__(self, config):
        super().__init__()
        dim, patch = config["dim"], config["patch_size"]
        tokens = (config["image_size"] // patch) ** 2 + 1
        self.patch_embed = nn.Conv2d(config["channels"], dim, kernel_size=patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(dim, config["heads"], dim_feedforward=config["mlp_dim"], dropout=0.0,
                                       activation="gelu", layer_norm_eps=LAYER_NORM_EPS, batch_first=True,
                                       norm_first=True)
            for _ in range(config["depth"])
        ])
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    def forward(self, images):
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)[:, 0]


def reference_name(timm_name):
    """Map a timm parameter name to ReferenceVit's, or None for a classifier head's tensor."""
    if timm_name.startswith("head."):
        return None
    fixed = {"patch_embed.proj.weight": "patch_embed.weight", "patch_embed.proj.bias": "patch_embed.bias"}
    if timm_name in fixed:
        return fixed[timm_name]
    if not timm_name.startswith("blocks."):
        return timm_name
    _, index, rest = timm_name.split(".", 2)
    renames = {
        "attn.qkv.weight": "self_attn.in_proj_weight",  # q, k and v stacked in this order in both
        "attn.qkv.bias": "self_attn.in_proj_bias",
        "attn.proj.weight": "self_attn.out_proj.weight",
        "attn.proj.bias": "self_attn.out_proj.bias",
        "mlp.fc1.weight": "linear1.weight",
        "mlp.fc1.bias": "linear1.bias",
        "mlp.fc2.weight": "linear2.weight",
        "mlp.fc2.bias": "linear2.bias",
    }
    return f"layers.{index}.{renames.get(rest, rest)}"


def load_reference_vit(config, weights_path):
    model = ReferenceVit(config)
    state = {}
    for name, array in read_safetensors(weights_path).items():
        mapped = reference_name(name)
        if mapped is not None:
            state[mapped] = torch.from_numpy(array.copy())
    # strict: a missing, unexpected or misshapen tensor is an error.
    model.load_state_dict(state, strict=True)
    return model.eval()


def time_finetuning(config, args):
    """Time fine-tuning steps of the reference ViT with nearnd's recipe and print the rate."""
    model = load_reference_vit(config, args.weights)
    frozen = ["patch_embed.", "cls_token", "pos_embed"] + [f"layers.{i}." for i in range(config["depth"] // 2)]
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(not any(name.startswith(prefix) for prefix in frozen))
    head = nn.Linear(config["dim"], 2)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad] + list(head.parameters())
    optimizer = torch.optim.SGD(trainable, lr=4e-4, weight_decay=5e-5)
    inputs = torch.from_numpy(np.load(args.inputs).astype(np.float32, copy=False))[:args.batch]
    labels = torch.arange(inputs.shape[0]) % 2
    model.train()

    seconds = 0.0
    for step in range(args.train_steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(head(model(inputs)), labels)
        loss.backward()
        optimizer.step()
        # Step 0 warms up allocators and caches and is not timed.
        if step > 0:
            seconds += time.perf_counter() - start
    print(f"reference: fine-tuning step of batch {inputs.shape[0]}, {torch.get_num_threads()} threads, "
          f"{args.train_steps} steps, {seconds / args.train_steps:.3f} s per step, "
          f"{args.train_steps * inputs.shape[0] / seconds:.2f} images/s, last loss {loss.item():.4f}", file=sys.stderr)
    return 0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="vit-quick", choices=sorted(CONFIGS),
                        help="named shape; the flags below override single fields")
    for field in CONFIG_FIELDS:
        parser.add_argument("--" + field.replace("_", "-"), type=int, dest=field)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs")
    parser.add_argument("--write-random-weights", metavar="FILE")
    parser.add_argument("--write-random-inputs", metavar="FILE")
    parser.add_argument("--count", type=int, default=8, help="rows of --write-random-inputs")
    parser.add_argument("--weights", metavar="FILE", help=".safetensors backbone weights in timm names")
    parser.add_argument("--inputs", metavar="FILE", help="float32 .npy inputs [N, C, H, W], already normalised")
    parser.add_argument("--out", metavar="FILE", help=".npy file the float32 features [N, dim] are written to")
    parser.add_argument("--batch", type=int, default=16, help="inputs per forward pass")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads; 0 keeps PyTorch's default")
    parser.add_argument("--train-steps", type=int, default=0, help="time this many fine-tuning steps instead")
    return parser.parse_args()


def main():
    args = parse_args()
    config = dict(zip(CONFIG_FIELDS, CONFIGS[args.config]))
    for field in CONFIG_FIELDS:
        if getattr(args, field) is not None:
            config[field] = getattr(args, field)

    if args.write_random_weights:
        write_safetensors(random_timm_weights(config, args.seed), args.write_random_weights)
    if args.write_random_inputs:
        rng = np.random.default_rng(args.seed + 1)
        shape = (args.count, config["channels"], config["image_size"], config["image_size"])
        np.save(args.write_random_inputs, rng.normal(0, 1, shape).astype(np.float32))
    if args.write_random_weights or args.write_random_inputs:
        return 0

    if args.weights and args.inputs and args.train_steps > 0:
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        return time_finetuning(config, args)
    if not (args.weights and args.inputs and args.out):
        print("vit_reference.py: give --weights, --inputs and --out, or a --write-random-* mode", file=sys.stderr)
        return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    model = load_reference_vit(config, args.weights)
    inputs = torch.from_numpy(np.load(args.inputs).astype(np.float32, copy=False))
    expected = (config["channels"], config["image_size"], config["image_size"])
    if inputs.dim() != 4 or tuple(inputs.shape[1:]) != expected:
        print(f"vit_reference.py: --inputs {args.inputs} has shape {tuple(inputs.shape)}; expected [N, "
              f"{expected[0]}, {expected[1]}, {expected[2]}]", file=sys.stderr)
        return 2

    # Times the forward passes alone, as `nearnd embed --preprocessed` does.
    start = time.perf_counter()
    with torch.no_grad():
        features = torch.cat([model(batch) for batch in torch.split(inputs, args.batch)])
    seconds = time.perf_counter() - start
    np.save(args.out, features.numpy().astype(np.float32))
    print(f"reference: {inputs.shape[0]} images, {features.shape[1]} features each, batch {args.batch}, "
          f"{torch.get_num_threads()} threads, {seconds:.3f} s, {inputs.shape[0] / seconds:.2f} images/s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
