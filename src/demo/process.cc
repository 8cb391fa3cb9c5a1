#include "demo/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace kvr::demo {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// In the child between fork and exec: only async-signal-safe calls.
[[noreturn]] void ExecChild(char* const* argv, int stdout_fd, int stderr_fd, pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(126);  // the parent died before prctl took effect
  dup2(stdout_fd, STDOUT_FILENO);
  dup2(stderr_fd, STDERR_FILENO);
  execv(argv[0], argv);
  const char message[] = "exec failed\n";
  [[maybe_unused]] ssize_t n = write(STDERR_FILENO, message, sizeof message - 1);
  _exit(127);
}

int TempFile() {
  char path[] = "/tmp/kvrouter-child-XXXXXX";
  const int fd = mkostemp(path, O_CLOEXEC);
  if (fd >= 0) unlink(path);
  return fd;
}

int MsLeft(SteadyClock::time_point deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

}  // namespace

std::string SelfExe() {
  std::error_code ec;
  const auto path = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "/proc/self/exe" : path.string();
}

absl::StatusOr<std::unique_ptr<Child>> Child::Spawn(std::string name,
                                                    std::vector<std::string> argv) {
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0)
    return absl::UnavailableError("pipe: " + std::string(strerror(errno)));
  const int err = TempFile();
  if (err < 0) {
    close(out[0]);
    close(out[1]);
    return absl::UnavailableError("temporary file: " + std::string(strerror(errno)));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) ExecChild(args.data(), out[1], err, parent);
  close(out[1]);
  if (pid < 0) {
    close(out[0]);
    close(err);
    return absl::UnavailableError(absl::StrCat("fork for ", name, ": ", strerror(errno)));
  }
  return std::unique_ptr<Child>(new Child(std::move(name), pid, out[0], err));
}

Child::Child(std::string name, pid_t pid, int stdout_fd, int stderr_fd)
    : name_(std::move(name)), pid_(pid), stdout_fd_(stdout_fd), stderr_fd_(stderr_fd) {}

Child::~Child() {
  if (!reaped_) {
    kill(pid_, SIGKILL);
    WaitFor(milliseconds(-1));
  }
  close(stdout_fd_);
  close(stderr_fd_);
}

absl::StatusOr<std::string> Child::ReadLine(milliseconds timeout,
                                            const std::function<bool()>& cancelled) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    if (const size_t nl = buffered_.find('\n'); nl != std::string::npos) {
      std::string line = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      return line;
    }
    if (cancelled && cancelled()) return absl::CancelledError("interrupted");
    if (SteadyClock::now() >= deadline) {
      return Failure(absl::StrCat("printed no readiness line in ", timeout.count(), " ms"));
    }
    pollfd p{.fd = stdout_fd_, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, std::min(MsLeft(deadline), 100)) <= 0) continue;
    char chunk[4096];
    const ssize_t n = read(stdout_fd_, chunk, sizeof chunk);
    if (n <= 0) {
      WaitFor(milliseconds(1000));  // closed stdout: it is most likely exiting
      return Failure("ended before its readiness line");
    }
    buffered_.append(chunk, static_cast<size_t>(n));
  }
}

bool Child::Exited() {
  if (reaped_) return true;
  return WaitFor(milliseconds(0));
}

bool Child::Stop(milliseconds grace) {
  if (!reaped_) {
    kill(pid_, SIGTERM);
    if (!WaitFor(grace)) {
      kill(pid_, SIGKILL);
      WaitFor(milliseconds(-1));
    }
  }
  return WIFEXITED(status_) && WEXITSTATUS(status_) == 0;
}

// Waits for the child to end, at most `timeout` (negative: no bound), on a pidfd (no sleeping);
// where pidfds are missing (Linux < 5.3), by polling every 10 ms.
bool Child::WaitFor(milliseconds timeout) {
  const auto deadline = SteadyClock::now() + (timeout.count() < 0 ? milliseconds(0) : timeout);
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  for (;;) {
    const pid_t r = waitpid(pid_, &status_, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      reaped_ = true;
      break;
    }
    if (timeout.count() >= 0 && SteadyClock::now() >= deadline) break;
    const int wait_ms = timeout.count() < 0 ? 1000 : MsLeft(deadline);
    if (pidfd >= 0) {
      pollfd p{.fd = pidfd, .events = POLLIN, .revents = 0};
      poll(&p, 1, wait_ms);
    } else {
      poll(nullptr, 0, std::min(wait_ms, 10));
    }
  }
  if (pidfd >= 0) close(pidfd);
  return reaped_;
}

std::string Child::Describe() const {
  if (!reaped_) return "running";
  if (WIFEXITED(status_)) return absl::StrCat("exited ", WEXITSTATUS(status_));
  if (WIFSIGNALED(status_)) return absl::StrCat("killed by signal ", WTERMSIG(status_));
  return "ended";
}

absl::StatusOr<std::string> Child::WaitForStderrLine(std::string_view needle,
                                                     milliseconds timeout,
                                                     const std::function<bool()>& cancelled) {
  const auto deadline = SteadyClock::now() + timeout;
  std::string text;  // what the child has written to stderr so far
  for (;;) {
    const off_t size = lseek(stderr_fd_, 0, SEEK_END);
    if (size > static_cast<off_t>(text.size())) {
      const size_t from = text.size();
      text.resize(static_cast<size_t>(size));
      const ssize_t n = pread(stderr_fd_, text.data() + from, text.size() - from,
                              static_cast<off_t>(from));
      text.resize(from + (n > 0 ? static_cast<size_t>(n) : 0));
    }
    if (const size_t at = text.find(needle); at != std::string::npos) {
      const size_t begin = text.rfind('\n', at);
      const size_t end = text.find('\n', at);
      if (end != std::string::npos) {
        const size_t start = begin == std::string::npos ? 0 : begin + 1;
        return text.substr(start, end - start);
      }
    }
    if (cancelled && cancelled()) return absl::CancelledError("interrupted");
    if (Exited()) return Failure(absl::StrCat("ended before logging '", std::string(needle), "'"));
    if (SteadyClock::now() >= deadline) {
      return Failure(absl::StrCat("logged no '", std::string(needle), "' in ", timeout.count(),
                                  " ms"));
    }
    poll(nullptr, 0, std::min(MsLeft(deadline), 50));
  }
}

std::string Child::StderrTail(size_t bytes) const {
  const off_t size = lseek(stderr_fd_, 0, SEEK_END);
  if (size <= 0) return "";
  const off_t from = size > static_cast<off_t>(bytes) ? size - static_cast<off_t>(bytes) : 0;
  std::string out(static_cast<size_t>(size - from), '\0');
  const ssize_t n = pread(stderr_fd_, out.data(), out.size(), from);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

absl::Status Child::Failure(const std::string& what) const {
  std::string tail = StderrTail();
  return absl::UnavailableError(absl::StrCat(name_, " (pid ", pid_, ") ", what, " (", Describe(),
                                             ")", tail.empty() ? "" : "; its stderr ends:\n",
                                             tail));
}

}  // namespace kvr::demo
