// Child processes that never outlive their parent: spawned with PR_SET_PDEATHSIG (SIGKILL when
// the parent dies, however it dies), their stdout on a pipe (for the readiness line), their
// stderr in an unlinked temporary file (its tail explains a failure), and killed and reaped by
// the destructor on every path. POSIX only; no Asio, no threads.
//
//   KVR_ASSIGN_OR_RETURN(auto child, Child::Spawn("engine-sim 0", {SelfExe(), "engine-sim"}));
//   KVR_ASSIGN_OR_RETURN(std::string ready,
//                        child->ReadLine(std::chrono::seconds(30), Interrupted));
//   ...
//   child->Stop(std::chrono::seconds(5));  // SIGTERM, then SIGKILL after the grace; reaped
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace kvr::demo {

class Child {
 public:
  // Starts argv[0] with argv. Unavailable when the process cannot be created; a program that
  // cannot be executed shows as a child that exits 127 at once (ReadLine says so).
  static absl::StatusOr<std::unique_ptr<Child>> Spawn(std::string name,
                                                      std::vector<std::string> argv);
  ~Child();  // kills (SIGKILL) and reaps a child still running
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // The next line the child writes on stdout, without its newline. Waits at most `timeout`;
  // `cancelled` is polled every 100 ms. Fails (naming the child, how it ended and the tail of its
  // stderr) when it exits or closes stdout first, on the timeout, or when cancelled.
  absl::StatusOr<std::string> ReadLine(std::chrono::milliseconds timeout,
                                       const std::function<bool()>& cancelled);
  // Waits until the child's stderr holds a complete line containing `needle` and returns that
  // line: for servers that announce readiness only in their log (llama-server's "listening on
  // http://HOST:PORT", written once the model is loaded). Same bounds and failures as ReadLine;
  // the stderr file is checked every 50 ms.
  absl::StatusOr<std::string> WaitForStderrLine(std::string_view needle,
                                                std::chrono::milliseconds timeout,
                                                const std::function<bool()>& cancelled);
  // True once the child has ended (reaps it; non-blocking).
  bool Exited();
  // SIGTERM, up to `grace` for it to end, then SIGKILL; always reaps. True when it exited 0.
  bool Stop(std::chrono::milliseconds grace);
  // "exited 3", "killed by signal 9", or "running".
  std::string Describe() const;
  // The last `bytes` of its stderr.
  std::string StderrTail(size_t bytes = 2000) const;
  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }

 private:
  Child(std::string name, pid_t pid, int stdout_fd, int stderr_fd);
  bool WaitFor(std::chrono::milliseconds timeout);  // true once reaped
  absl::Status Failure(const std::string& what) const;

  std::string name_;
  pid_t pid_;
  int stdout_fd_, stderr_fd_;
  std::string buffered_;  // stdout bytes after the last line returned
  bool reaped_ = false;
  int status_ = 0;  // waitpid status once reaped
};

// This binary's path (/proc/self/exe resolved), to start its own subcommands.
std::string SelfExe();

}  // namespace kvr::demo
