#!/usr/bin/python3
"""Writes a small convolutional backbone as a TorchScript module for nearnd's tests.

The module's forward takes images [N, C, S, S] and returns features [N, 16]. Scripted modules
carry the attributes nearnd reads (image_size, channels, mean, std); traced ones carry none,
so nearnd falls back to its defaults. With --inputs and --features, the script also writes
fixed random inputs and the module's features on them in eval mode, for a parity check.

usage: make_scripted_backbone.py --out MODULE.pt [--mode script|trace] [--image-size 28]
           [--channels 3] [--mean 0.25] [--std 0.5] [--inputs X.npy --features Y.npy]
"""

import argparse
from typing import List

import numpy as np
import torch
from torch import nn


class SmallConvNet(nn.Module):
    image_size: int
    channels: int
    mean: List[float]
    std: List[float]

    def __init__(self, image_size: int, channels: int, mean: float, std: float):
        super().__init__()
        self.image_size = image_size
        self.channels = channels
        self.mean = [mean] * channels
        self.std = [std] * channels
        self.conv1 = nn.Conv2d(channels, 8, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 16)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(images))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean(dim=(2, 3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="TorchScript module file to write")
    parser.add_argument("--mode", choices=["script", "trace"], default="script")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--mean", type=float, default=0.25)
    parser.add_argument("--std", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inputs", help="write 4 random inputs [4, C, S, S] here (float32 .npy)")
    parser.add_argument("--features", help="write the module's features on --inputs here")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    model = SmallConvNet(args.image_size, args.channels, args.mean, args.std)
    # Non-trivial batch-norm statistics, so that eval mode differs from training mode.
    with torch.no_grad():
        model.bn2.running_mean.uniform_(-0.5, 0.5)
        model.bn2.running_var.uniform_(0.5, 1.5)
    model.eval()

    example = torch.randn(4, args.channels, args.image_size, args.image_size)
    module = torch.jit.script(model) if args.mode == "script" else torch.jit.trace(model, example)
    torch.jit.save(module, args.out)

    if args.inputs:
        np.save(args.inputs, example.numpy().astype(np.float32))
    if args.features:
        with torch.no_grad():
            np.save(args.features, model(example).numpy().astype(np.float32))


if __name__ == "__main__":
    main()
