// gpuslice-fake-mps-v3-control: a stand-in for NVIDIA's `nvidia-cuda-mps-control` under MPS v3
// (driver r615+) where there is no GPU. It follows NVIDIA's documented v3 behaviour
// (docs.nvidia.com/deploy/mps/615: "MPS v3 Interface", "MPS v3 Namespaces", "MPS v3
// Configuration File") and, where the documentation stored for this project is silent, the
// assumptions listed in docs/isolation.md. Deterministic: no clocks, no randomness.
//
// Daemon:  gpuslice-fake-mps-v3-control (-d|-f) -p 3 [-a config.toml]
//   CUDA_MPS_PIPE_DIRECTORY names the pipe directory. Creates the main control socket
//   $PIPE/control, per server $PIPE/<server>/control and $PIPE/<server>/default/control, per
//   namespace $PIPE/<server>/<namespace>/control, and nvidia-cuda-mps-control.pid. The TOML file
//   is checked as NVIDIA documents: schema_version "1.0"; [servers.<name>] accepts
//   allowed_devices, pinned_memory_limit, active_thread_percentage, client_priority, uid,
//   locality_domains (boolean only); [servers.<name>.namespaces.<name>] accepts only
//   pinned_memory_limit, active_thread_percentage, client_priority; any other key is an error
//   (message with file and line on stderr, exit 1). SIGTERM/SIGINT or `quit`: sockets removed.
// Commands (arguments, or lines on stdin; sent to $PIPE/control):
//   namespace create --server=S --name=N [--pinned-memory-limit=M]
//                    [--active-thread-percentage=P] [--client-priority=C]
//   namespace delete --server=S --name=N      namespace list --server=S
//   server list      client list [--server=S]  quit   (-q: quit)
//   Output on stdout, errors as "error: ..." on stderr, exit status 0 / 1 (refused) / 2 (usage).
// Client:  gpuslice-fake-mps-v3-control --client-hello [--hold]
//   Connects to $CUDA_MPS_PIPE_DIRECTORY/control as a CUDA client would and prints where the
//   daemon routed it ("server=S namespace=N pinned_memory_limit=... ..."); --hold then waits to
//   be killed, so `client list` shows it. A client on the main socket goes to the first server's
//   default namespace (NVIDIA routes by UID there).
// One thread serves all sockets from one poll(): a peer that is slow to send its line delays only
// its own answer (no receive timeout). Tests only: a FIFO gpuslice-fake-listen-gate in the pipe
// directory holds the daemon between bind() and listen() of $PIPE/control (see kListenGate).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Limits {
  std::string pinned_memory_limit = "0";  // as given ("4G"); "0" = none
  int active_thread_percentage = 100;
  int client_priority = 0;
};

struct Server {
  std::string allowed_devices;
  Limits limits;
  std::map<std::string, Limits> namespaces;  // "default" always present
};

struct Listener {
  int fd = -1;
  std::string server;     // "" = the main control socket
  std::string name;       // namespace; "default" for the server socket
  std::string directory;  // where its "control" socket is
};

std::string Trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 63) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

bool ValidMemory(const std::string& v) {
  std::size_t digits = 0;
  while (digits < v.size() && std::isdigit(static_cast<unsigned char>(v[digits]))) ++digits;
  const std::string unit = v.substr(digits);
  return digits > 0 && digits <= 15 &&
         (unit.empty() || unit == "K" || unit == "M" || unit == "G" || unit == "T");
}

std::optional<int> SmallInt(const std::string& v, int low, int high) {
  if (v.empty() || v.size() > 3 || !std::all_of(v.begin(), v.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c));
      }))
    return std::nullopt;
  const int n = std::stoi(v);
  if (n < low || n > high) return std::nullopt;
  return n;
}

// Sets one limit key; "" on success, else the error.
std::string SetLimit(Limits& l, const std::string& key, const std::string& value) {
  if (key == "pinned_memory_limit") {
    if (!ValidMemory(value)) return "pinned_memory_limit '" + value + "' is not <digits>[K|M|G|T]";
    l.pinned_memory_limit = value;
  } else if (key == "active_thread_percentage") {
    auto n = SmallInt(value, 1, 100);
    if (!n) return "active_thread_percentage '" + value + "' is outside 1..100";
    l.active_thread_percentage = *n;
  } else if (key == "client_priority") {
    auto n = SmallInt(value, 0, 1);
    if (!n) return "client_priority '" + value + "' is outside 0..1";
    l.client_priority = *n;
  } else {
    return "unknown key '" + key + "'";
  }
  return "";
}

std::string Describe(const std::string& server, const std::string& name, const Limits& l) {
  return "server=" + server + " namespace=" + name +
         " pinned_memory_limit=" + l.pinned_memory_limit +
         " active_thread_percentage=" + std::to_string(l.active_thread_percentage) +
         " client_priority=" + std::to_string(l.client_priority);
}

// ---- TOML (the subset the MPS v3 file uses: tables, arrays of tables, strings, ints, bools) --

struct ConfigError {
  std::string message;
};

std::map<std::string, Server> ParseConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError{path + ": cannot read the configuration file"};
  std::map<std::string, Server> servers;
  std::string schema;
  std::vector<std::string> table;  // current [a.b.c]
  bool array_table = false;
  int line_number = 0;
  auto fail = [&](const std::string& what) {
    throw ConfigError{path + ":" + std::to_string(line_number) + ": " + what};
  };
  for (std::string raw; std::getline(in, raw);) {
    ++line_number;
    std::string line;
    bool quoted = false;
    for (char c : raw) {
      if (c == '"') quoted = !quoted;
      if (c == '#' && !quoted) break;
      line += c;
    }
    line = Trim(line);
    if (line.empty()) continue;
    if (line.front() == '[') {
      array_table = line.rfind("[[", 0) == 0;
      const std::size_t open = array_table ? 2 : 1;
      const std::size_t close = line.find(']');
      if (close == std::string::npos) fail("unterminated table header");
      table.clear();
      std::istringstream parts(line.substr(open, close - open));
      for (std::string part; std::getline(parts, part, '.');) table.push_back(Trim(part));
      if (table.size() >= 2 && table[0] == "servers") {
        if (!ValidName(table[1]) || table[1] == "default")
          fail("invalid server name '" + table[1] + "'");
        servers[table[1]].namespaces.try_emplace("default");
        if (table.size() >= 4 && table[2] == "namespaces" && !array_table) {
          if (!ValidName(table[3])) fail("invalid namespace name '" + table[3] + "'");
          servers[table[1]].namespaces.try_emplace(table[3]);
        }
      }
      continue;
    }
    const std::size_t eq = line.find('=');
    if (eq == std::string::npos) fail("expected key = value");
    const std::string key = Trim(line.substr(0, eq));
    std::string value = Trim(line.substr(eq + 1));
    bool is_string = value.size() >= 2 && value.front() == '"' && value.back() == '"';
    if (is_string) value = value.substr(1, value.size() - 2);
    const bool is_bool = value == "true" || value == "false";
    if (table.empty()) {
      if (key != "schema_version") fail("unknown top-level key '" + key + "'");
      schema = value;
    } else if (table[0] == "servers" && table.size() == 2) {
      Server& s = servers[table[1]];
      if (key == "allowed_devices") {
        s.allowed_devices = value;
      } else if (key == "uid") {
        const bool digits = !value.empty() && value.size() < 10 &&
                            std::all_of(value.begin(), value.end(), [](char c) {
                              return std::isdigit(static_cast<unsigned char>(c));
                            });
        if (is_string || !digits) fail("uid must be an integer");
      } else if (key == "locality_domains") {
        if (!is_bool) fail("locality_domains accepts a boolean only");
      } else if (std::string e = SetLimit(s.limits, key, value); !e.empty()) {
        fail("[servers." + table[1] + "]: " + e);
      }
    } else if (table[0] == "servers" && table.size() == 4 && table[2] == "namespaces" &&
               !array_table) {
      Limits& l = servers[table[1]].namespaces[table[3]];
      if (std::string e = SetLimit(l, key, value); !e.empty()) {
        fail("[servers." + table[1] + ".namespaces." + table[3] + "]: " + e);
      }
    } else if (table[0] == "servers" && (table.size() < 3 || table[2] != "devices")) {
      fail("unknown table");
    }
    // [[servers.<n>.devices]] (SM partitions), [features.*], [compute_policy]: not simulated.
  }
  if (schema != "1.0") throw ConfigError{path + ": schema_version must be \"1.0\""};
  for (auto& [name, server] : servers) {
    // The default namespace takes the server's limits unless the file sets its own.
    Limits& d = server.namespaces["default"];
    if (d.pinned_memory_limit == "0" && d.active_thread_percentage == 100 && d.client_priority == 0)
      d = server.limits;
  }
  return servers;
}

// ---- sockets ---------------------------------------------------------------------------------

// Tests only: a FIFO by this name in a socket's directory holds the daemon between bind() and
// listen() of that socket (the socket file exists, connecting is refused) until a test opens the
// FIFO for writing; a control command refused meanwhile leaves kRefusedMark next to it.
constexpr char kListenGate[] = "gpuslice-fake-listen-gate";
constexpr char kRefusedMark[] = "gpuslice-fake-refused";

// In the socket's directory (the working directory while UnixSocketIn binds).
void HoldAtListenGate() {
  struct stat st {};
  if (stat(kListenGate, &st) != 0 || !S_ISFIFO(st.st_mode)) return;
  const int gate = open(kListenGate, O_RDONLY | O_CLOEXEC);  // blocks until a writer opens it
  if (gate >= 0) close(gate);
}

// Binds/connects "<dir>/control" relative to `dir` (paths can exceed sun_path).
int UnixSocketIn(const std::string& dir, bool listen_on) {
  const int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (chdir(dir.c_str()) != 0) {
    close(cwd);
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, "control");
  int rc = 0;
  if (listen_on) {
    unlink("control");
    rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    HoldAtListenGate();
    if (rc == 0) rc = listen(fd, 16);
  } else {
    rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  }
  if (fchdir(cwd) != 0) rc = -1;
  close(cwd);
  if (rc != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool WriteAll(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    // MSG_NOSIGNAL: a peer that went away is an error here, not a SIGPIPE that kills the daemon.
    const ssize_t n = send(fd, text.data() + done, text.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  return out;
}

class Daemon {
 public:
  Daemon(std::string pipe, std::map<std::string, Server> servers)
      : pipe_(std::move(pipe)), servers_(std::move(servers)) {}

  bool Open(std::string& error) {
    if (!AddListener("", "", pipe_)) {
      error = "cannot listen on " + pipe_ + "/control";
      return false;
    }
    for (auto& [name, server] : servers_) {
      if (!AddListener(name, "default", pipe_ + "/" + name)) {
        error = "cannot listen on " + pipe_ + "/" + name + "/control";
        return false;
      }
      for (const auto& [ns, limits] : server.namespaces) {
        if (!AddListener(name, ns, pipe_ + "/" + name + "/" + ns)) {
          error = "cannot listen on the socket of namespace " + ns;
          return false;
        }
      }
    }
    std::ofstream(pipe_ + "/nvidia-cuda-mps-control.pid") << getpid() << "\n";
    return true;
  }

  // One thread, no clocks: listeners and half-read connections share one poll(). A peer that is
  // slow to send its line (a loaded node) only delays its own answer, and one that sends nothing
  // holds only its own connection.
  void Run(int signal_fd) {
    while (!quit_) {
      std::vector<pollfd> fds;
      fds.push_back({signal_fd, POLLIN, 0});
      for (const Listener& l : listeners_) fds.push_back({l.fd, POLLIN, 0});
      for (const Connection& c : connections_) fds.push_back({c.fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[0].revents != 0) break;
      // Copies: serving a line may add or remove listeners (namespace create/delete).
      std::vector<Listener> ready;
      std::vector<int> readable;
      for (std::size_t i = 0; i < listeners_.size(); ++i) {
        if (fds[1 + i].revents != 0) ready.push_back(listeners_[i]);
      }
      for (std::size_t i = 0; i < connections_.size(); ++i) {
        if (fds[1 + listeners_.size() + i].revents != 0) readable.push_back(connections_[i].fd);
      }
      for (const int fd : readable) Read(fd);
      for (const Listener& l : ready) Accept(l);
    }
    for (const Connection& c : connections_) close(c.fd);
    for (const Listener& l : listeners_) {
      close(l.fd);
      std::filesystem::remove(l.directory + "/control");
    }
    std::filesystem::remove(pipe_ + "/nvidia-cuda-mps-control.pid");
  }

 private:
  // An accepted connection until its first line (a command, or a client's hello) is complete.
  struct Connection {
    int fd = -1;
    Listener via;      // the socket it came in on (routes a client)
    std::string line;  // received so far
  };

  bool AddListener(const std::string& server, const std::string& name, const std::string& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    const int fd = UnixSocketIn(dir, true);
    if (fd < 0) return false;
    listeners_.push_back({fd, server, name, dir});
    return true;
  }

  void Accept(const Listener& l) {
    // A namespace deleted by a line served in the same round has lost its listener.
    if (std::none_of(listeners_.begin(), listeners_.end(), [&l](const Listener& x) {
          return x.fd == l.fd && x.directory == l.directory;
        }))
      return;
    const int conn = accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn >= 0) connections_.push_back({conn, l, ""});
  }

  // Reads what `fd` has (poll said readable: no blocking); at a newline (or the 4096-byte cap)
  // serves the line and closes the connection. A peer that closes without a line gets nothing.
  void Read(int fd) {
    auto it = std::find_if(connections_.begin(), connections_.end(),
                           [fd](const Connection& c) { return c.fd == fd; });
    if (it == connections_.end()) return;
    char buf[512];
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) return;
    bool complete = n <= 0;  // EOF or error: serve what came, if anything
    for (ssize_t i = 0; i < n && !complete; ++i) {
      if (buf[i] == '\n' || it->line.size() >= 4096) {
        complete = true;
      } else {
        it->line += buf[i];
      }
    }
    if (!complete) return;
    const Connection done = std::move(*it);
    connections_.erase(it);
    if (n > 0 || !done.line.empty()) Serve(done.via, done.line, done.fd);
    close(done.fd);
  }

  // Answers a complete first line: a command on the main socket, else a client to route.
  void Serve(const Listener& l, const std::string& line, int conn) {
    if (l.server.empty() && line != "hello") {
      std::ostringstream out, err;
      const int rc = Command(line, out, err);
      WriteAll(conn, out.str() + (err.str().empty() ? "" : "\x01" + err.str()) + "\x02" +
                         std::to_string(rc) + "\n");
    } else {
      // A client: routed by the socket it connected to.
      std::string server = l.server, name = l.name;
      if (server.empty()) {
        server = servers_.empty() ? "" : servers_.begin()->first;
        name = "default";
      }
      ucred cred{};
      socklen_t len = sizeof(cred);
      getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len);
      if (!server.empty() && servers_[server].namespaces.count(name) > 0) {
        clients_.push_back({cred.pid, server, name});
        WriteAll(conn, Describe(server, name, servers_[server].namespaces[name]) + "\n");
      } else {
        WriteAll(conn, "error: no server\n");
      }
    }
  }

  static std::map<std::string, std::string> Options(const std::vector<std::string>& words,
                                                    std::size_t from, std::string& bad) {
    std::map<std::string, std::string> opts;
    for (std::size_t i = from; i < words.size(); ++i) {
      const std::string& w = words[i];
      const std::size_t eq = w.find('=');
      if (w.rfind("--", 0) != 0 || eq == std::string::npos) {
        bad = w;
        continue;
      }
      opts[w.substr(2, eq - 2)] = w.substr(eq + 1);
    }
    return opts;
  }

  int Command(const std::string& line, std::ostream& out, std::ostream& err) {
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    if (words.size() == 1 && words[0] == "quit") {
      quit_ = true;
      return 0;
    }
    if (words.size() < 2) {
      err << "error: expected <module> <verb> [--option=value ...], got '" << line << "'\n";
      return 2;
    }
    std::string bad;
    auto opts = Options(words, 2, bad);
    if (!bad.empty()) {
      err << "error: '" << bad << "' is not --option=value\n";
      return 2;
    }
    const std::string verb = words[0] + " " + words[1];
    if (verb == "server list") {
      for (const auto& [name, s] : servers_)
        out << "name=" << name << " allowed_devices=" << s.allowed_devices << "\n";
      return 0;
    }
    if (verb == "client list") {
      for (const auto& c : clients_) {
        if (kill(c.pid, 0) != 0) continue;  // gone
        if (opts.count("server") && opts["server"] != c.server) continue;
        out << "pid=" << c.pid << " server=" << c.server << " namespace=" << c.name << "\n";
      }
      return 0;
    }
    if (words[0] != "namespace") {
      err << "error: unknown command '" << verb << "'\n";
      return 2;
    }
    auto server = servers_.find(opts["server"]);
    if (server == servers_.end()) {
      err << "error: no server named '" << opts["server"] << "'\n";
      return 1;
    }
    const std::string name = opts["name"];
    if (words[1] == "list") {
      for (const auto& [ns, l] : server->second.namespaces) {
        if (ns == "default") continue;
        out << "name=" << ns << " pinned_memory_limit=" << l.pinned_memory_limit
            << " active_thread_percentage=" << l.active_thread_percentage
            << " client_priority=" << l.client_priority << "\n";
      }
      return 0;
    }
    if (words[1] == "create") return Create(server->first, name, opts, err);
    if (words[1] == "delete") return Delete(server->first, name, err);
    err << "error: unknown command '" << verb << "'\n";
    return 2;
  }

  int Create(const std::string& server, const std::string& name,
             std::map<std::string, std::string>& opts, std::ostream& err) {
    if (!ValidName(name) || name == "default") {
      err << "error: invalid namespace name '" << name << "'\n";
      return 1;
    }
    Server& s = servers_[server];
    if (s.namespaces.count(name) > 0) {
      err << "error: namespace '" << name << "' already exists on server '" << server << "'\n";
      return 1;
    }
    Limits limits = s.limits;
    for (const auto& [key, value] : opts) {
      if (key == "server" || key == "name") continue;
      std::string k = key;
      std::replace(k.begin(), k.end(), '-', '_');
      if (std::string e = SetLimit(limits, k, value); !e.empty()) {
        err << "error: " << e << "\n";
        return 2;
      }
    }
    if (!AddListener(server, name, pipe_ + "/" + server + "/" + name)) {
      err << "error: cannot create the socket of namespace '" << name << "'\n";
      return 1;
    }
    s.namespaces[name] = limits;
    return 0;
  }

  int Delete(const std::string& server, const std::string& name, std::ostream& err) {
    Server& s = servers_[server];
    if (name == "default" || s.namespaces.count(name) == 0) {
      err << "error: no namespace '" << name << "' on server '" << server << "'\n";
      return 1;
    }
    s.namespaces.erase(name);
    for (auto it = listeners_.begin(); it != listeners_.end(); ++it) {
      if (it->server == server && it->name == name) {
        close(it->fd);
        std::error_code ec;
        std::filesystem::remove(it->directory + "/control", ec);
        std::filesystem::remove(it->directory, ec);  // only when empty
        listeners_.erase(it);
        break;
      }
    }
    return 0;
  }

  struct Client {
    pid_t pid;
    std::string server, name;
  };
  std::string pipe_;
  std::map<std::string, Server> servers_;
  std::vector<Listener> listeners_;
  std::vector<Connection> connections_;
  std::vector<Client> clients_;
  bool quit_ = false;
};

int RunDaemon(bool background, const std::string& config) {
  const char* pipe = std::getenv("CUDA_MPS_PIPE_DIRECTORY");
  const std::string pipe_dir = pipe != nullptr ? pipe : "/tmp/nvidia-mps";
  std::map<std::string, Server> servers;
  try {
    if (!config.empty()) servers = ParseConfig(config);
  } catch (const ConfigError& e) {
    std::cerr << "nvidia-cuda-mps-control: configuration error: " << e.message << "\n";
    return 1;
  }
  std::error_code ec;
  std::filesystem::create_directories(pipe_dir, ec);
  int ready[2] = {-1, -1};
  if (background) {
    if (pipe2(ready, O_CLOEXEC) != 0) return 1;
    const pid_t child = fork();
    if (child < 0) return 1;
    if (child > 0) {  // the parent returns once the daemon listens
      close(ready[1]);
      char status = 1;
      const bool got = read(ready[0], &status, 1) == 1;
      return got && status == 0 ? 0 : 1;
    }
    close(ready[0]);
    setsid();
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  const int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC);
  Daemon daemon(pipe_dir, std::move(servers));
  std::string error;
  const bool opened = daemon.Open(error);
  if (!opened) std::cerr << "nvidia-cuda-mps-control: " << error << "\n";
  if (background) {
    if (opened) {  // detach from the caller's terminal and pipes, as a daemon does
      const int null = open("/dev/null", O_RDWR | O_CLOEXEC);
      for (int fd = 0; fd < 3; ++fd) dup2(null, fd);
      close(null);
    }
    const char status = opened ? 0 : 1;
    (void)!write(ready[1], &status, 1);
    close(ready[1]);
  }
  if (!opened) return 1;
  daemon.Run(signal_fd);
  return 0;
}

// Sends one command line; prints the reply; returns the command's exit status.
int SendCommand(const std::string& line) {
  const char* pipe = std::getenv("CUDA_MPS_PIPE_DIRECTORY");
  const std::string dir = pipe != nullptr ? pipe : "/tmp/nvidia-mps";
  const int fd = UnixSocketIn(dir, false);
  if (fd < 0) {
    std::error_code ec;
    if (std::filesystem::is_fifo(dir + "/" + kListenGate, ec)) {
      std::ofstream(dir + "/" + kRefusedMark) << line << "\n";
    }
    std::cerr << "error: cannot reach the MPS control daemon (is it running?)\n";
    return 1;
  }
  WriteAll(fd, line + "\n");
  const std::string reply = ReadAll(fd);
  close(fd);
  const std::size_t end = reply.rfind('\x02');
  if (end == std::string::npos) {
    std::cerr << "error: the MPS control daemon closed the connection\n";
    return 1;
  }
  std::string body = reply.substr(0, end);
  const std::size_t err = body.find('\x01');
  std::cout << body.substr(0, err);
  if (err != std::string::npos) std::cerr << body.substr(err + 1);
  return std::atoi(reply.c_str() + end + 1);
}

int ClientHello(bool hold) {
  const char* pipe = std::getenv("CUDA_MPS_PIPE_DIRECTORY");
  const int fd = UnixSocketIn(pipe != nullptr ? pipe : "/tmp/nvidia-mps", false);
  if (fd < 0) {
    std::cerr << "error: no MPS socket at " << (pipe != nullptr ? pipe : "") << "/control\n";
    return 1;
  }
  WriteAll(fd, "hello\n");
  std::cout << ReadAll(fd) << std::flush;
  close(fd);
  if (hold) pause();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "--client-hello") {
    return ClientHello(args.size() > 1 && args[1] == "--hold");
  }
  bool daemon = false, background = false;
  std::string config, protocol = "2";
  if (const char* env = std::getenv("CUDA_MPS_PROTOCOL_VERSION")) protocol = env;
  std::vector<std::string> command;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-d" || a == "--daemon") {
      daemon = background = true;
    } else if (a == "-f" || a == "--foreground") {
      daemon = true;
    } else if ((a == "-p" || a == "--protocol") && i + 1 < args.size()) {
      if (std::getenv("CUDA_MPS_PROTOCOL_VERSION") == nullptr) protocol = args[i + 1];
      ++i;
    } else if ((a == "-a" || a == "--apply") && i + 1 < args.size()) {
      config = args[++i];
    } else if (a == "-q" || a == "--quit") {
      command = {"quit"};
    } else {
      command.push_back(a);
    }
  }
  if (daemon) {
    if (protocol != "3") {
      std::cerr << "nvidia-cuda-mps-control: this fake speaks only MPS v3 (-p 3)\n";
      return 2;
    }
    if (!command.empty()) {
      std::cerr << "nvidia-cuda-mps-control: unexpected argument '" << command[0] << "'\n";
      return 2;
    }
    return RunDaemon(background, config);
  }
  if (!command.empty()) {
    std::string line;
    for (const std::string& w : command) line += (line.empty() ? "" : " ") + w;
    return SendCommand(line);
  }
  int rc = 0;
  for (std::string line; std::getline(std::cin, line);) {
    if (!Trim(line).empty()) rc = SendCommand(Trim(line));
  }
  return rc;
}
