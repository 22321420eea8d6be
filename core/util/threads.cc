#include "core/util/threads.h"

#include <omp.h>
#include <unistd.h>

#include <torch/torch.h>

namespace nearnd {

int ConfigureThreads(int threads) {
  if (threads <= 0) {
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    threads = online > 0 ? static_cast<int>(online) : 1;
  }
  omp_set_num_threads(threads);
  torch::set_num_threads(threads);
  return threads;
}

}  // namespace nearnd
