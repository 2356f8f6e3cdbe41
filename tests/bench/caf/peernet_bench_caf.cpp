// peernet-bench-caf: the CAF 0.17 anchor for PeerNet's actor benchmarks.
//
// DESIGN.md states PeerNet's actor targets as ratios against CAF measured
// side by side on the same machine, so this program runs the same three
// workloads as PeerNet's own actor benchmarks and prints its figures in the
// same one-line JSON shape:
//
//   actor-pingpong  two actors bounce one integer counter; n = hops.
//   actor-fanin     100 senders each send about n/100 integers to one
//                   receiver; n = messages received.
//   actor-spawn     main spawns n actors and sends each one message, on
//                   which it quits; n = actors.
//
// Usage: peernet-bench-caf SUBCOMMAND [--n N] [--workers W]
//
// stdout carries exactly one JSON line per run and nothing else, so scripts
// can parse it; diagnostics go to stderr. Exit status: 0 on success, 2 on
// bad usage.
//
// Threads: main only spawns actors, sends them messages and then blocks on
// a latch (or on await_all_actors_done); every actor's state is touched only
// by its own handlers, which CAF runs on its scheduler's worker threads.

#include <caf/all.hpp>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using bench_clock = std::chrono::steady_clock;

constexpr uint64_t pingpong_default_n = 2000000;
constexpr uint64_t fanin_default_n = 10000000;
constexpr uint64_t spawn_default_n = 200000;
constexpr uint64_t fanin_senders = 100;

// Tells a fan-in sender to start sending. The receiver only ever sees
// int32_t payloads, so the atom keeps the two message kinds apart.
using go_atom = caf::atom_constant<caf::atom("go")>;

// A one-shot completion signal from an actor (on a CAF worker thread) to
// main. A mutex and condition variable rather than a spin on an atomic, so
// main sleeps instead of taking a core away from the workers being
// measured. The mutex orders the flag write before main's read.
class latch {
public:
  void signal() {
    std::lock_guard<std::mutex> guard{mtx_};
    done_ = true;
    // Notify while holding the lock: main cannot return and destroy the
    // latch before this thread is done with it.
    cv_.notify_one();
  }

  void wait() {
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait(guard, [this] { return done_; });
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  bool done_ = false;
};

double seconds_since(bench_clock::time_point start) {
  return std::chrono::duration<double>(bench_clock::now() - start).count();
}

void print_result(const char *bench, const char *rate_key, size_t workers,
                  uint64_t n, double elapsed_s) {
  std::printf("{\"bench\":\"%s\",\"impl\":\"caf\",\"workers\":%zu,"
              "\"n\":%llu,\"elapsed_s\":%.6f,\"%s\":%.1f}\n",
              bench, workers, static_cast<unsigned long long>(n), elapsed_s,
              rate_key, static_cast<double>(n) / elapsed_s);
  std::fflush(stdout);
}

// -- actor-pingpong -----------------------------------------------------------

struct player_state {
  caf::actor peer;
};

// One of the two players. First message: the peer's handle. After that,
// counter k arrives; below n the player sends k + 1 back, so every hop is
// one actor-to-actor message. The player that receives k == n signals main,
// then both quit: the winner forwards n + 1 so the other one stops too.
// Quitting destroys the state, which breaks the a <-> b reference cycle.
caf::behavior player(caf::stateful_actor<player_state> *self, uint64_t n,
                     latch *done) {
  return {
      [=](const caf::actor &peer) { self->state.peer = peer; },
      [=](uint64_t k) {
        if (k < n) {
          self->send(self->state.peer, k + 1);
          return;
        }
        if (k == n) {
          done->signal();
          self->send(self->state.peer, k + 1);
        }
        self->quit();
      },
  };
}

void bench_pingpong(caf::actor_system &sys, size_t workers, uint64_t n) {
  latch done;
  auto a = sys.spawn(player, n, &done);
  auto b = sys.spawn(player, n, &done);
  // Both handles go out before the kick-off: the peer message to b is
  // enqueued before a can possibly send b its first counter.
  caf::anon_send(a, b);
  caf::anon_send(b, a);
  // The kick-off (counter 0, from main) is not a hop; hops 1..n are the
  // actor-to-actor messages, and the clock stops when hop n is received.
  auto start = bench_clock::now();
  caf::anon_send(a, uint64_t{0});
  done.wait();
  double elapsed = seconds_since(start);
  // Untimed: wait until both players have quit, so nothing can still refer
  // to the latch on our stack when this function returns.
  a = nullptr;
  b = nullptr;
  sys.await_all_actors_done();
  print_result("actor-pingpong", "msgs_per_s", workers, n, elapsed);
}

// -- actor-fanin --------------------------------------------------------------

struct receiver_state {
  uint64_t count = 0;
};

// Counts int32_t messages; at n it signals main and quits.
caf::behavior fanin_receiver(caf::stateful_actor<receiver_state> *self,
                             uint64_t n, latch *done) {
  return {
      [=](int32_t) {
        if (++self->state.count == n) {
          done->signal();
          self->quit();
        }
      },
  };
}

// On "go", sends its share in one loop and quits. Sending everything from
// one handler is what a CAF user would write; the receiver's unbounded
// mailbox absorbs the burst.
caf::behavior fanin_sender(caf::event_based_actor *self, caf::actor receiver,
                           uint64_t count) {
  return {
      [=](go_atom) {
        for (uint64_t i = 0; i < count; ++i)
          self->send(receiver, int32_t{1});
        self->quit();
      },
  };
}

void bench_fanin(caf::actor_system &sys, size_t workers, uint64_t n) {
  latch done;
  auto receiver = sys.spawn(fanin_receiver, n, &done);
  // n / 100 each; the first n % 100 senders take one extra message so the
  // total is exactly n for any n (the receiver waits for exactly n).
  std::vector<caf::actor> senders;
  senders.reserve(fanin_senders);
  for (uint64_t i = 0; i < fanin_senders; ++i) {
    uint64_t share = n / fanin_senders + (i < n % fanin_senders ? 1 : 0);
    senders.push_back(sys.spawn(fanin_sender, receiver, share));
  }
  // All senders exist before the clock starts; only the sending and the
  // counting are timed.
  auto start = bench_clock::now();
  for (auto &s : senders)
    caf::anon_send(s, go_atom::value);
  done.wait();
  double elapsed = seconds_since(start);
  senders.clear();
  receiver = nullptr;
  sys.await_all_actors_done();
  print_result("actor-fanin", "msgs_per_s", workers, n, elapsed);
}

// -- actor-spawn --------------------------------------------------------------

// Quits on its one message.
caf::behavior leaf(caf::event_based_actor *self) {
  return {
      [=](int32_t) { self->quit(); },
  };
}

void bench_spawn(caf::actor_system &sys, size_t workers, uint64_t n) {
  auto start = bench_clock::now();
  for (uint64_t i = 0; i < n; ++i) {
    // The handle is dropped at the end of each iteration; the pending
    // message keeps the actor scheduled until it has run and quit.
    auto a = sys.spawn(leaf);
    caf::anon_send(a, int32_t{1});
  }
  sys.await_all_actors_done();
  double elapsed = seconds_since(start);
  print_result("actor-spawn", "actors_per_s", workers, n, elapsed);
}

// -- command line -------------------------------------------------------------

void usage() {
  std::fprintf(stderr,
               "usage: peernet-bench-caf SUBCOMMAND [--n N] [--workers W]\n"
               "subcommands:\n"
               "  actor-pingpong  n = hops (default %llu)\n"
               "  actor-fanin     n = messages from 100 senders "
               "(default %llu)\n"
               "  actor-spawn     n = actors (default %llu)\n"
               "--workers defaults to std::thread::hardware_concurrency()\n",
               static_cast<unsigned long long>(pingpong_default_n),
               static_cast<unsigned long long>(fanin_default_n),
               static_cast<unsigned long long>(spawn_default_n));
}

// Parses a positive decimal integer. strtoull alone would accept a sign,
// leading space and trailing junk, so those are rejected first and after.
bool parse_positive(const char *text, uint64_t *out) {
  if (text == nullptr || *text < '0' || *text > '9')
    return false;
  errno = 0;
  char *end = nullptr;
  unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || v == 0)
    return false;
  *out = v;
  return true;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  const char *cmd = argv[1];
  if (std::strcmp(cmd, "-h") == 0 || std::strcmp(cmd, "--help") == 0) {
    usage();
    return 0;
  }
  void (*run)(caf::actor_system &, size_t, uint64_t) = nullptr;
  uint64_t n = 0;
  if (std::strcmp(cmd, "actor-pingpong") == 0) {
    run = bench_pingpong;
    n = pingpong_default_n;
  } else if (std::strcmp(cmd, "actor-fanin") == 0) {
    run = bench_fanin;
    n = fanin_default_n;
  } else if (std::strcmp(cmd, "actor-spawn") == 0) {
    run = bench_spawn;
    n = spawn_default_n;
  } else {
    std::fprintf(stderr, "peernet-bench-caf: unknown subcommand '%s'\n", cmd);
    usage();
    return 2;
  }
  uint64_t workers = std::thread::hardware_concurrency();
  if (workers == 0)
    workers = 1; // hardware_concurrency() may return 0 when unknown.
  for (int i = 2; i < argc; i += 2) {
    const char *opt = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : nullptr;
    uint64_t *dst = nullptr;
    if (std::strcmp(opt, "--n") == 0)
      dst = &n;
    else if (std::strcmp(opt, "--workers") == 0)
      dst = &workers;
    if (dst == nullptr || !parse_positive(val, dst)) {
      std::fprintf(stderr, "peernet-bench-caf: bad option '%s'%s%s%s\n", opt,
                   val != nullptr ? " with value '" : "",
                   val != nullptr ? val : "", val != nullptr ? "'" : "");
      usage();
      return 2;
    }
  }
  caf::actor_system_config cfg;
  // CAF 0.17 reads "scheduler.max-threads" as the worker count and defaults
  // it to max(hardware_concurrency, 4), so it is always set explicitly.
  // config_value holds integers as int64_t. cfg.parse() is never called, so
  // no caf-application.ini or CAF command-line option can change the setup.
  cfg.set("scheduler.max-threads", static_cast<int64_t>(workers));
  caf::actor_system sys{cfg};
  // Report what the scheduler actually started, not what was asked for.
  size_t used = sys.scheduler().num_workers();
  if (used != workers)
    std::fprintf(stderr,
                 "peernet-bench-caf: asked for %llu workers, CAF runs %zu\n",
                 static_cast<unsigned long long>(workers), used);
  run(sys, used, n);
  return 0;
}
