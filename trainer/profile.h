#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace nearnd {

// Profile is a named set of defaults for every step. A flag given on the command line wins.
//   quick: a small ViT at 28x28 and a small score network, sized to run on a 2-core CPU.
//   paper: ViT-B/16 at 224 with the reference recipe and a larger score network, for GPUs.
struct Profile {
  std::string name;

  // Backbone and its preprocessing.
  std::string backbone;
  int resize_size = 28;
  int crop_size = 28;

  // Pretraining of the starting backbone on MNIST digits, when no weights are given.
  int pretrain_epochs = 8;
  int pretrain_batch_size = 128;
  double pretrain_lr = 1e-3;

  // Score network and its training.
  int generator_channels = 16;
  int generator_size = 28;
  int generator_batch_size = 64;
  double generator_lr = 1e-3;
  int generator_max_steps = 1200;
  int generator_check_every = 200;
  double sigma_min = 0.01;
  double sigma_max = 25.0;
  double target_frechet_distance = 0.0;

  // Sampling.
  int sampler_steps = 100;
  double snr = 0.3;
  int check_samples = 256;
  int fakes = 500;

  // Fine-tuning.
  int finetune_epochs = 20;
  int freeze_blocks = 2;
  int finetune_batch_size = 16;
  double finetune_lr = 4e-4;
  double weight_decay = 5e-5;
};

// ProfileByName returns "quick" or "paper"; other names are an InvalidArgumentError.
absl::StatusOr<Profile> ProfileByName(const std::string& name);

}  // namespace nearnd
