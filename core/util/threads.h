#pragma once

namespace nearnd {

// ConfigureThreads sets LibTorch's intra-op and OpenMP thread counts to `threads`, or to the
// number of online processors when threads <= 0, and returns the count it set. LibTorch starts
// with one thread on some systems, so every program calls this once at start-up.
int ConfigureThreads(int threads);

}  // namespace nearnd
