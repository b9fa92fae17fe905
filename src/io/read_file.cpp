#include "diffbench/io/read_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "diffbench/error.hpp"

namespace diffbench {

int open_regular_file(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) throw InputError("no such file", file.string());
    throw InputError(std::string("cannot open: ") + std::strerror(err), file.string());
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const bool dir = S_ISDIR(st.st_mode);
    ::close(fd);
    throw InputError(dir ? "not a regular file (a folder)" : "not a regular file (a FIFO, socket or device)", file.string());
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

std::string read_regular_file(const std::filesystem::path& file, uint64_t max_bytes) {
  const int fd = open_regular_file(file);
  struct stat st {};
  ::fstat(fd, &st);
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size > max_bytes) {
    ::close(fd);
    throw InputError("file is " + std::to_string(size) + " bytes, more than the " + std::to_string(max_bytes) +
                         " this kind of file may have",
                     file.string());
  }
  std::string data;
  data.resize(static_cast<size_t>(size));
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::read(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw InputError(std::string("read error: ") + std::strerror(err), file.string());
    }
    if (n == 0) break;  // shrank while reading
    done += static_cast<size_t>(n);
  }
  data.resize(done);
  ::close(fd);
  return data;
}

}  // namespace diffbench
