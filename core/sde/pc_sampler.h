#pragma once

#include <torch/torch.h>

#include "core/sde/ve_sde.h"

namespace nearnd {

// PcSamplerOptions configures predictor-corrector sampling.
struct PcSamplerOptions {
  // Reverse-diffusion predictor steps from sigma_max down to sigma_min.
  int steps = 100;

  // Langevin corrector steps after each predictor step, and their signal-to-noise ratio.
  int corrector_steps = 1;
  double snr = 0.16;

  // Return the mean of the last predictor step, without its noise.
  bool denoise = true;
};

// SamplePc draws samples of `shape` from the reverse-time VE SDE with the reverse-diffusion
// predictor and the Langevin corrector, starting from the prior. Runs without gradients.
torch::Tensor SamplePc(const VeSde& sde, const ScoreFunction& score, torch::IntArrayRef shape,
                       const PcSamplerOptions& options);

}  // namespace nearnd
