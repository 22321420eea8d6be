#pragma once

// Test support shared by the tests that run nearnd's binaries: child processes with captured
// output, temporary directories and generated images.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "core/data/image.h"

namespace nearnd {

namespace fs = std::filesystem;

// How long a child process gets to start serving or to exit.
constexpr auto kProcessTimeout = std::chrono::seconds(30);

// ---------------------------------------------------------------------------------------------
// Child processes

// ChildProcess runs a program with its stdout and stderr captured, and kills it on destruction
// when it is still running, so that no test path leaves a process behind.
class ChildProcess {
 public:
  // Start runs argv[0] with `argv`; stdin reads `stdin_path`, or /dev/null when it is empty.
  static std::unique_ptr<ChildProcess> Start(const std::vector<std::string>& argv,
                                             const std::string& stdin_path = "") {
    std::unique_ptr<ChildProcess> child(new ChildProcess());
    int stdout_pipe[2];
    int stderr_pipe[2];
    if (pipe2(stdout_pipe, O_CLOEXEC) != 0 || pipe2(stderr_pipe, O_CLOEXEC) != 0) return nullptr;

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(
        &actions, 0, stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, stdout_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, stderr_pipe[1], 2);

    std::vector<char*> arguments;
    for (const std::string& argument : argv)
      arguments.push_back(const_cast<char*>(argument.c_str()));
    arguments.push_back(nullptr);
    const int spawned =
        posix_spawn(&child->pid_, argv[0].c_str(), &actions, nullptr, arguments.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(stdout_pipe[1]);
    close(stderr_pipe[1]);
    if (spawned != 0) {
      close(stdout_pipe[0]);
      close(stderr_pipe[0]);
      return nullptr;
    }

    child->stdout_reader_ = std::thread(
        [child = child.get(), fd = stdout_pipe[0]] { child->ReadInto(fd, &child->stdout_); });
    child->stderr_reader_ = std::thread(
        [child = child.get(), fd = stderr_pipe[0]] { child->ReadInto(fd, &child->stderr_); });
    return child;
  }

  ~ChildProcess() {
    if (!exit_code_.has_value()) {
      kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    if (stdout_reader_.joinable()) stdout_reader_.join();
    if (stderr_reader_.joinable()) stderr_reader_.join();
  }

  // Wait returns the exit code (128 + signal number when a signal ended the process), or
  // nothing when the process still runs after `timeout`.
  std::optional<int> Wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!exit_code_.has_value()) {
      int status = 0;
      const pid_t result = waitpid(pid_, &status, WNOHANG);
      if (result == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // The pipes reach end of file once the process is gone, so the readers finish.
    if (stdout_reader_.joinable()) stdout_reader_.join();
    if (stderr_reader_.joinable()) stderr_reader_.join();
    return exit_code_;
  }

  // WaitForStderrMatch returns the capture groups of the first match of `pattern` in stderr,
  // or nothing when the process exits or `timeout` passes first.
  std::optional<std::vector<std::string>> WaitForStderrMatch(const std::regex& pattern,
                                                             std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string text = stderr_text();
      std::smatch match;
      if (std::regex_search(text, match, pattern)) {
        std::vector<std::string> groups;
        for (size_t i = 1; i < match.size(); ++i) groups.push_back(match[i].str());
        return groups;
      }
      if (Wait(std::chrono::milliseconds(0)).has_value()) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::nullopt;
  }

  void Signal(int signal_number) { kill(pid_, signal_number); }

  std::string stdout_text() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stdout_;
  }
  std::string stderr_text() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stderr_;
  }

 private:
  ChildProcess() = default;

  void ReadInto(int fd, std::string* output) {
    char buffer[4096];
    ssize_t count = 0;
    while ((count = read(fd, buffer, sizeof(buffer))) > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      output->append(buffer, static_cast<size_t>(count));
    }
    close(fd);
  }

  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::mutex mutex_;
  std::string stdout_;
  std::string stderr_;
  std::thread stdout_reader_;
  std::thread stderr_reader_;
};

struct CommandResult {
  int exit_code = -1;
  std::string stdout_text;
  std::string stderr_text;
};

// RunCommand runs a program to completion; a run longer than `timeout` fails the test.
inline CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& stdin_path = "",
                                std::chrono::seconds timeout = kProcessTimeout) {
  CommandResult result;
  std::unique_ptr<ChildProcess> child = ChildProcess::Start(argv, stdin_path);
  if (child == nullptr) {
    ADD_FAILURE() << "failed to start " << argv[0];
    return result;
  }
  const std::optional<int> exit_code = child->Wait(timeout);
  if (!exit_code.has_value()) ADD_FAILURE() << argv[0] << " did not exit within " << timeout.count() << " s";
  result.exit_code = exit_code.value_or(-1);
  result.stdout_text = child->stdout_text();
  result.stderr_text = child->stderr_text();
  return result;
}


inline std::string MakeTempDir(const std::string& prefix) {
  std::string pattern = (fs::path(::testing::TempDir()) / (prefix + ".XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) return "";
  return pattern;
}

inline void WriteFile(const fs::path& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
}

// MakeImage returns a deterministic image whose pattern depends on `seed`.
inline Image MakeImage(int height, int width, int channels, int seed) {
  Image image;
  image.height = height;
  image.width = width;
  image.channels = channels;
  image.pixels.resize(static_cast<size_t>(height) * width * channels);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c) {
        const int value = (x * (7 + seed) + y * (13 + 3 * seed) + c * 50 + seed * 29) % 256;
        image.pixels[(static_cast<size_t>(y) * width + x) * channels + c] =
            static_cast<uint8_t>(value);
      }
    }
  }
  return image;
}

}  // namespace nearnd
