#pragma once

#include <string>
#include <vector>

namespace nearnd {

// NormalizeFlagNames returns argv with dashes inside flag names turned into underscores, so
// `--metrics-port=9090` and `--metrics_port 9090` both reach the Abseil flag metrics_port.
// Values and positional arguments are unchanged, and "--" ends flag processing.
std::vector<std::string> NormalizeFlagNames(int argc, char** argv);

// ArgvPointers returns pointers into `args` for APIs that take argc/argv; `args` must outlive
// the result.
std::vector<char*> ArgvPointers(std::vector<std::string>& args);

}  // namespace nearnd
