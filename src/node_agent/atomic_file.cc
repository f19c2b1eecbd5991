#include "node_agent/atomic_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace gpuslice {
namespace {

// `mode` < 0: the temporary file keeps the mode the umask gives it.
Status WriteWithMode(const std::string& path, const std::string& content, int mode) {
  const std::filesystem::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) {
    std::filesystem::create_directories(target.parent_path(), ec);
    if (ec) {
      return Unavailable("cannot create directory " + target.parent_path().string() + ": " +
                         ec.message());
    }
  }
  const std::string temp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << content;
    out.flush();
    if (!out) return Unavailable("cannot write " + temp);
  }
  std::error_code ec_mode;
  if (mode >= 0 && ::chmod(temp.c_str(), static_cast<mode_t>(mode)) != 0) {
    std::filesystem::remove(temp, ec_mode);
    return Unavailable("cannot set the mode of " + temp);
  }
  std::filesystem::rename(temp, target, ec);
  if (ec) {
    std::filesystem::remove(temp, ec);
    return Unavailable("cannot rename " + temp + " to " + path + ": " + ec.message());
  }
  return Status::Ok();
}

}  // namespace

Status WriteFileAtomically(const std::string& path, const std::string& content) {
  return WriteWithMode(path, content, -1);
}

Status InstallFileAtomically(const std::string& from, const std::string& to, unsigned mode) {
  const std::string content = ReadFileOrEmpty(from);
  if (content.empty()) return Unavailable("cannot read " + from + " (missing or empty)");
  if (ReadFileOrEmpty(to) == content) {
    // Same bytes: the file (and the inode a running process holds) stays; only its mode is fixed.
    if (::chmod(to.c_str(), static_cast<mode_t>(mode)) != 0) {
      return Unavailable("cannot set the mode of " + to);
    }
    return Status::Ok();
  }
  return WriteWithMode(to, content, static_cast<int>(mode));
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace gpuslice
