// peernet-bench-caf-remote: the CAF 0.17 caf::io anchor of peernet-bench
// remote-pingpong and remote-flood (tests/bench/bench_remote.c): two
// processes on loopback, this one and a child it starts ("serve"), which
// publishes an echo actor and a sink with the middleman. The same work as
// PeerNet's: one 64-byte message at a time to the echo, which answers its
// sender (n round trips after a warm-up); n one-way 64-byte messages to
// the sink, which answers once it has them all. One scheduler thread per
// process, as PeerNet's runtimes have one worker each. One JSON line on
// stdout per run; diagnostics on stderr.
//
//   peernet-bench-caf-remote remote-pingpong|remote-flood [--n N]

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

using count_atom = caf::atom_constant<caf::atom("count")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using bench_clock = std::chrono::steady_clock;
constexpr uint64_t warmup = 2000;

caf::behavior echo_fn() {
  return {[](const std::vector<char> &v) { return v; }};
}

struct sink_state {
  uint64_t want = 0;
  uint64_t got = 0;
  caf::actor to;
};

caf::behavior sink_fn(caf::stateful_actor<sink_state> *self) {
  return {
      [=](count_atom, uint64_t n, const caf::actor &to) {
        self->state.want = n;
        self->state.got = 0;
        self->state.to = to;
      },
      [=](const std::vector<char> &) {
        if (++self->state.got == self->state.want)
          self->send(self->state.to, done_atom::value);
      },
  };
}

void configure(caf::actor_system_config &cfg) {
  cfg.load<caf::io::middleman>();
  cfg.set("scheduler.max-threads", static_cast<int64_t>(1));
}

int serve() {
  caf::actor_system_config cfg;
  configure(cfg);
  caf::actor_system sys{cfg};
  auto echo = sys.spawn(echo_fn);
  auto sink = sys.spawn(sink_fn);
  auto p1 = sys.middleman().publish(echo, 0, "127.0.0.1");
  auto p2 = sys.middleman().publish(sink, 0, "127.0.0.1");
  if (!p1 || !p2)
    return 1;
  std::printf("%u %u\n", static_cast<unsigned>(*p1),
              static_cast<unsigned>(*p2));
  std::fflush(stdout);
  char buf[64];
  while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
  }
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  return 0;
}

double pct(std::vector<uint64_t> &v, double p) {
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size()));
  return static_cast<double>(v[std::min(i, v.size() - 1)]) / 1000.0;
}

int run(const char *exe, bool flood, uint64_t n) {
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0)
    return 1;
  pid_t child = fork();
  if (child == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    execl(exe, exe, "serve", static_cast<char *>(nullptr));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  FILE *from = fdopen(out[0], "r");
  unsigned p1 = 0, p2 = 0;
  if (!from || std::fscanf(from, "%u %u", &p1, &p2) != 2) {
    std::fprintf(stderr, "peernet-bench-caf-remote: no ports from serve\n");
    return 1;
  }
  int status = 1;
  {
    caf::actor_system_config cfg;
    configure(cfg);
    caf::actor_system sys{cfg};
    auto target = sys.middleman().remote_actor(
        "127.0.0.1", static_cast<uint16_t>(flood ? p2 : p1));
    if (!target) {
      std::fprintf(stderr, "peernet-bench-caf-remote: %s\n",
                   sys.render(target.error()).c_str());
    } else {
      caf::scoped_actor self{sys};
      std::vector<char> msg(64);
      if (flood) {
        auto t0 = bench_clock::now();
        self->send(*target, count_atom::value, n,
                   caf::actor_cast<caf::actor>(self));
        for (uint64_t i = 0; i < n; i++)
          self->send(*target, msg);
        self->receive([](done_atom) {});
        double s =
            std::chrono::duration<double>(bench_clock::now() - t0).count();
        std::printf("{\"bench\":\"remote-flood\",\"impl\":\"caf\","
                    "\"size\":64,\"n\":%llu,\"seconds\":%.3f,"
                    "\"msgs_per_s\":%.0f}\n",
                    static_cast<unsigned long long>(n), s,
                    static_cast<double>(n) / s);
      } else {
        std::vector<uint64_t> samples;
        samples.reserve(n);
        for (uint64_t i = 0; i < warmup + n; i++) {
          auto t0 = bench_clock::now();
          self->request(*target, caf::infinite, msg)
              .receive([](const std::vector<char> &) {}, [](caf::error &) {});
          auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        bench_clock::now() - t0)
                        .count();
          if (i >= warmup)
            samples.push_back(static_cast<uint64_t>(ns));
        }
        std::sort(samples.begin(), samples.end());
        std::printf("{\"bench\":\"remote-pingpong\",\"impl\":\"caf\","
                    "\"size\":64,\"n\":%llu,\"rtt_p50_us\":%.1f,"
                    "\"rtt_p99_us\":%.1f}\n",
                    static_cast<unsigned long long>(n), pct(samples, 0.50),
                    pct(samples, 0.99));
      }
      std::fflush(stdout);
      status = 0;
    }
  }
  close(in[1]); // the child's stdin: it ends
  int st = 0;
  waitpid(child, &st, 0);
  std::fclose(from);
  return status;
}

} // namespace

int main(int argc, char **argv) {
  if (argc >= 2 && std::strcmp(argv[1], "serve") == 0)
    return serve();
  if (argc < 2 || (std::strcmp(argv[1], "remote-pingpong") != 0 &&
                   std::strcmp(argv[1], "remote-flood") != 0)) {
    std::fprintf(stderr, "usage: peernet-bench-caf-remote "
                         "remote-pingpong|remote-flood [--n N]\n");
    return 2;
  }
  bool flood = std::strcmp(argv[1], "remote-flood") == 0;
  uint64_t n = flood ? 1000000 : 20000;
  if (argc == 4 && std::strcmp(argv[2], "--n") == 0)
    n = std::strtoull(argv[3], nullptr, 10);
  if (n == 0)
    return 2;
  return run(argv[0], flood, n);
}
