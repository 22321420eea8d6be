// nearnd-scorer serves novelty scores of one bundle over gRPC (nearnd.v1.NoveltyService) and
// exposes Prometheus metrics over HTTP. It stops on SIGINT or SIGTERM after draining in-flight
// requests, and exits 0.

#include <glog/logging.h>
#include <signal.h>

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "core/util/command_line.h"
#include "core/util/status_macros.h"
#include "core/util/threads.h"
#include "services/scorer/scorer_server.h"

ABSL_FLAG(std::string, bundle, "", "Bundle directory written by `nearnd bundle`. Required.");
ABSL_FLAG(std::string, host, nearnd::ScorerOptions().host,
          "Address that the gRPC server and the metrics endpoint listen on.");
ABSL_FLAG(int, port, nearnd::ScorerOptions().port, "gRPC port; 0 picks a free port and logs it.");
ABSL_FLAG(int, metrics_port, nearnd::ScorerOptions().metrics_port,
          "Port of the Prometheus endpoint /metrics; 0 picks a free port and logs it.");
ABSL_FLAG(int, threads, 0, "LibTorch threads for scoring; 0 uses every online processor.");
ABSL_FLAG(int, max_inflight, nearnd::ScorerOptions().limits.max_inflight,
          "Requests scored at the same time; further requests get RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, max_images_per_request, nearnd::ScorerOptions().limits.max_images_per_request,
          "Images accepted in one request; a larger request gets INVALID_ARGUMENT.");
ABSL_FLAG(int, max_request_bytes, nearnd::ScorerOptions().max_request_bytes,
          "Largest request message accepted, in bytes.");
ABSL_FLAG(int, drain_seconds, 10,
          "Seconds that in-flight requests get to finish after SIGINT or SIGTERM before they "
          "are cancelled.");

namespace {

// BlockStopSignals blocks SIGINT and SIGTERM in this thread and in every thread it starts later,
// so that WaitForStopSignal receives them and no gRPC or LibTorch thread is interrupted.
sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int WaitForStopSignal(const sigset_t& signals) {
  int signal_number = 0;
  while (sigwait(&signals, &signal_number) != 0) {
  }
  return signal_number;
}

absl::Status RunScorer(const std::vector<char*>& positional) {
  if (positional.size() > 1) {
    std::vector<std::string> extra(positional.begin() + 1, positional.end());
    return absl::InvalidArgumentError(
        absl::StrFormat("unexpected arguments: %s; nearnd-scorer takes flags only, see --help",
                        absl::StrJoin(extra, " ")));
  }

  nearnd::ScorerOptions options;
  options.bundle_dir = absl::GetFlag(FLAGS_bundle);
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.limits.max_inflight = absl::GetFlag(FLAGS_max_inflight);
  options.limits.max_images_per_request = absl::GetFlag(FLAGS_max_images_per_request);
  options.max_request_bytes = absl::GetFlag(FLAGS_max_request_bytes);
  const absl::Duration drain_timeout = absl::Seconds(absl::GetFlag(FLAGS_drain_seconds));
  const int threads = nearnd::ConfigureThreads(absl::GetFlag(FLAGS_threads));

  LOG(INFO) << "nearnd-scorer starting: bundle=" << options.bundle_dir << " host=" << options.host
            << " port=" << options.port << " metrics_port=" << options.metrics_port
            << " threads=" << threads << " max_inflight=" << options.limits.max_inflight
            << " max_images_per_request=" << options.limits.max_images_per_request
            << " max_request_bytes=" << options.max_request_bytes
            << " drain_seconds=" << absl::ToDoubleSeconds(drain_timeout);

  const sigset_t stop_signals = BlockStopSignals();
  NEARND_ASSIGN_OR_RETURN(std::unique_ptr<nearnd::ScorerServer> scorer,
                          nearnd::ScorerServer::Start(options));

  const int signal_number = WaitForStopSignal(stop_signals);
  LOG(INFO) << "received " << strsignal(signal_number);
  scorer->Shutdown(drain_timeout);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  // --help lists the flags defined in this file, where Abseil's default looks for a file named
  // after the binary.
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view path) {
    return absl::StrContains(path, "services/scorer/");
  };
  absl::SetFlagsUsageConfig(usage_config);
  absl::SetProgramUsageMessage(
      "serves novelty scores of one bundle over gRPC.\n"
      "Usage: nearnd-scorer --bundle DIR [--port 50051] [--metrics-port 9464] [--host 0.0.0.0]");
  // Flags may be written with dashes (--metrics-port) or underscores (--metrics_port).
  std::vector<std::string> args = nearnd::NormalizeFlagNames(argc, argv);
  std::vector<char*> arg_pointers = nearnd::ArgvPointers(args);
  std::vector<char*> positional =
      absl::ParseCommandLine(static_cast<int>(args.size()), arg_pointers.data());

  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);

  const absl::Status status = RunScorer(positional);
  if (!status.ok()) {
    LOG(ERROR) << status.message();
    return 1;
  }
  return 0;
}
