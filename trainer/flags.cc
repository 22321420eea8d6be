#include "trainer/flags.h"

#include <string>
#include <vector>

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, dataset, "fashion-mnist",
          "Dataset with the normal class: fashion-mnist, mnist, cifar10, cifar100 or folder:PATH (one "
          "sub-folder per class under PATH/train and PATH/test).");
ABSL_FLAG(std::string, data_dir, "data", "Directory scripts/fetch-data writes the datasets to.");
ABSL_FLAG(int, normal_class, 6, "Index of the normal class; every other class is novel at evaluation.");
ABSL_FLAG(std::string, out, "runs/default", "Run directory; each step reads the previous step's files here.");
ABSL_FLAG(std::string, profile, "quick", "Defaults for every step: quick (small, CPU) or paper (ViT-B/16, GPU).");
ABSL_FLAG(int, threads, 0, "CPU threads for LibTorch; 0 uses every online processor.");
ABSL_FLAG(int, seed, 0, "Random seed of initialisation, sampling and shuffling.");
ABSL_FLAG(std::string, backbone, "",
          "Backbone: vit-quick, vit-ti16, vit-s16, vit-b16, vit-b32 or vit-l16, or torchscript:PATH for a "
          "module saved with torch.jit.save whose forward returns features [N, D] (default: from --profile).");
ABSL_FLAG(std::string, backbone_weights, "",
          "Pretrained backbone weights: a Google ViT .npz or a timm .safetensors checkpoint. Empty: pretrain "
          "on --pretrain-dataset into OUT/pretrain, or, for a TorchScript backbone, the module's own weights.");

ABSL_FLAG(std::string, normalization, "backbone",
          "Input normalisation: backbone (the values the backbone was pretrained with: mean and std 0.5 for "
          "Google and timm ViTs; a TorchScript module's mean and std attributes, else the ImageNet values) or "
          "imagenet (the ImageNet mean and std, which the reference novelty-detection code applies to ViT "
          "too). The bundle stores the values, so the scorer applies the same.");
ABSL_FLAG(std::string, pretrain_dataset, "mnist",
          "Labelled dataset the starting backbone is pretrained on when --backbone-weights is empty. It "
          "must differ from --dataset.");
ABSL_FLAG(int, pretrain_epochs, -1, "Pretraining epochs (-1: from --profile).");

ABSL_FLAG(int, generator_channels, -1, "Score network width at full resolution (-1: from --profile).");
ABSL_FLAG(int, generator_max_steps, -1, "Training steps after which generation stops even above --target-fd.");
ABSL_FLAG(int, generator_check_every, -1, "Steps between Frechet distance checks (-1: from --profile).");
ABSL_FLAG(int, generator_check_samples, -1,
          "Samples drawn at each Frechet distance check (-1: from --profile).");
ABSL_FLAG(double, generator_lr, -1, "Adam learning rate of the score network (-1: from --profile).");
ABSL_FLAG(double, target_fd, -1,
          "Frechet distance at which generation stops early (-1: from --profile). Lower means fakes closer "
          "to the normal class.");
ABSL_FLAG(double, sigma_max, -1, "Largest noise level of the VE SDE (-1: from --profile).");
ABSL_FLAG(int, sampler_steps, -1, "Predictor-corrector steps per sample (-1: from --profile).");
ABSL_FLAG(double, snr, -1,
          "Signal-to-noise ratio of the Langevin corrector's step (-1: from --profile).");
ABSL_FLAG(int, fakes, -1, "Fake anomalies to sample once generation stops (-1: from --profile).");

ABSL_FLAG(int, epochs, -1, "Fine-tuning epochs (-1: from --profile).");
ABSL_FLAG(int, freeze_blocks, -1,
          "Leading ViT encoder blocks kept frozen while fine-tuning, with the patch and position embeddings "
          "(-1: half of them).");
ABSL_FLAG(std::vector<std::string>, freeze, {},
          "Comma-separated parameter name prefixes kept frozen while fine-tuning, e.g. conv1.,bn1.,layer1. "
          "for a ResNet; replaces --freeze-blocks. A TorchScript backbone trains every parameter without it.");
ABSL_FLAG(int, batch_size, 16, "Fine-tuning batch size.");
ABSL_FLAG(double, lr, 4e-4, "Fine-tuning SGD learning rate.");
ABSL_FLAG(double, weight_decay, 5e-5, "Fine-tuning SGD weight decay.");

ABSL_FLAG(int, k, 2, "Nearest normal embeddings summed into a novelty score.");
ABSL_FLAG(double, target_fpr, 0.05, "False positive rate on held-out normal images that sets the threshold.");
ABSL_FLAG(double, heldout_fraction, 0.1,
          "Fraction of normal training images held out of a temporary index to set the threshold.");

ABSL_FLAG(std::string, model_version, "", "Bundle version; empty uses the UTC creation time, YYYYMMDDTHHMMSSZ.");
