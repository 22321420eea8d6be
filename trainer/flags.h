#pragma once

// Flags of the `nearnd` subcommands. Integer and float flags whose default is -1 take their
// value from --profile.

#include <string>
#include <vector>

#include "absl/flags/declare.h"

// Shared by every step.
ABSL_DECLARE_FLAG(std::string, dataset);
ABSL_DECLARE_FLAG(std::string, data_dir);
ABSL_DECLARE_FLAG(int, normal_class);
ABSL_DECLARE_FLAG(std::string, out);
ABSL_DECLARE_FLAG(std::string, profile);
ABSL_DECLARE_FLAG(int, threads);
ABSL_DECLARE_FLAG(int, seed);
ABSL_DECLARE_FLAG(std::string, backbone);
ABSL_DECLARE_FLAG(std::string, backbone_weights);
ABSL_DECLARE_FLAG(std::string, normalization);

// pretrain
ABSL_DECLARE_FLAG(std::string, pretrain_dataset);
ABSL_DECLARE_FLAG(int, pretrain_epochs);

// generate
ABSL_DECLARE_FLAG(int, generator_channels);
ABSL_DECLARE_FLAG(int, generator_max_steps);
ABSL_DECLARE_FLAG(int, generator_check_every);
ABSL_DECLARE_FLAG(int, generator_check_samples);
ABSL_DECLARE_FLAG(double, generator_lr);
ABSL_DECLARE_FLAG(double, target_fd);
ABSL_DECLARE_FLAG(double, sigma_max);
ABSL_DECLARE_FLAG(int, sampler_steps);
ABSL_DECLARE_FLAG(double, snr);
ABSL_DECLARE_FLAG(int, fakes);

// finetune
ABSL_DECLARE_FLAG(int, epochs);
ABSL_DECLARE_FLAG(int, freeze_blocks);
ABSL_DECLARE_FLAG(std::vector<std::string>, freeze);
ABSL_DECLARE_FLAG(int, batch_size);
ABSL_DECLARE_FLAG(double, lr);
ABSL_DECLARE_FLAG(double, weight_decay);

// index and evaluate
ABSL_DECLARE_FLAG(int, k);
ABSL_DECLARE_FLAG(double, target_fpr);
ABSL_DECLARE_FLAG(double, heldout_fraction);

// bundle
ABSL_DECLARE_FLAG(std::string, model_version);
