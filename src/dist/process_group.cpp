#include "diffbench/dist/process_group.hpp"

// c10d declares its Gloo backend behind USE_C10D_GLOO (Torch's CMake targets define it when their
// libtorch_cpu has Gloo built in, as the wheel's has); gloo's own headers, which the wheel lacks, come
// from Debian's libgloo-dev (the Makefile installs it). Only c10d's classes are used here, and no
// gloo type is made in this file, so its older headers need only declare what c10d's header names.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>

#include "diffbench/error.hpp"

namespace diffbench {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A collective waits for the slowest rank's generation; a dead rank is the watchdog's to find.
constexpr milliseconds kCollectiveTimeout = std::chrono::hours(24 * 7);

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }
std::string string_of(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "?";
  return buf;
}

// The first line of an exception's text (c10d's carry a C++ backtrace after it).
std::string first_line(const std::string& what) { return what.substr(0, what.find('\n')); }

std::string rank_key(const char* what, int rank) { return std::string(what) + "/" + std::to_string(rank); }

// "failed" holds "exit code \n rank \n message".
std::string encode_failure(int code, int rank, const std::string& message) {
  return std::to_string(code) + "\n" + std::to_string(rank) + "\n" + message;
}

}  // namespace

struct ProcessGroup::Impl {
  World world;
  ProcessGroupOptions options;
  std::string host = host_name();
  std::string endpoint;
  bool serves_store = false;
  c10::intrusive_ptr<c10d::Store> store;        // the main thread's connection
  c10::intrusive_ptr<c10d::Store> watch_store;  // the watchdog's own: a blocking call on one never stalls the other
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;

  std::thread watchdog;
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  bool finished = false;
  std::atomic<bool> peer_failed{false};
  std::atomic<int> stop_signal{0};  // a stop some rank published (request_stop), read by the watchdog
  std::string verdict;  // the watchdog's message, under `mutex`

  c10::intrusive_ptr<c10d::Store> connect(bool server) const {
    c10d::TCPStoreOptions o;
    o.port = static_cast<uint16_t>(world.master_port);
    o.isServer = server;
    o.waitWorkers = false;
    o.timeout = options.join_timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(world.master_addr, o);
    return c10::make_intrusive<c10d::PrefixStore>("diffbench/attempt_" + std::to_string(world.restart_count), tcp);
  }

  void stop_watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
    }
    wake.notify_all();
    if (watchdog.joinable()) watchdog.join();
  }

  void report_peer_failure(int code, const std::string& message) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      verdict = message;
    }
    peer_failed = true;
    if (options.on_peer_failure) options.on_peer_failure(code, message);
  }

  // Every period: beat, read a published failure, look for peers whose heartbeat stopped.
  void watch() {
    const milliseconds period = std::min<milliseconds>(milliseconds(500), options.heartbeat_timeout / 4);
    const auto n = static_cast<size_t>(world.size);
    std::vector<int64_t> beats(n, -1);
    std::vector<Clock::time_point> moved(n, Clock::now());
    std::vector<bool> done(n, false);
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex);
        if (wake.wait_for(lock, period, [&] { return stopping; })) return;
      }
      int code = 3;
      std::string failure;
      try {
        watch_store->add(rank_key("heartbeat", world.rank), 1);
        if (stop_signal == 0 && watch_store->check({"stop"}))
          stop_signal = std::atoi(string_of(watch_store->get("stop")).c_str());
        if (watch_store->check({"failed"})) {
          const std::string v = string_of(watch_store->get("failed"));
          const size_t a = v.find('\n'), b = v.find('\n', a + 1);
          code = std::atoi(v.substr(0, a).c_str());
          failure = v.substr(b + 1);
          watch_store->set(rank_key("seen", world.rank), bytes_of("1"));
        } else {
          const auto now = Clock::now();
          for (size_t r = 0; r < n && failure.empty(); ++r) {
            if (static_cast<int>(r) == world.rank || done[r]) continue;
            if (watch_store->check({rank_key("finished", static_cast<int>(r))})) {
              done[r] = true;
              continue;
            }
            const int64_t b = watch_store->add(rank_key("heartbeat", static_cast<int>(r)), 0);
            if (b != beats[r]) {
              beats[r] = b;
              moved[r] = now;
            } else if (now - moved[r] > options.heartbeat_timeout) {
              failure = "rank " + std::to_string(r) + " stopped responding: no heartbeat for " +
                        std::to_string(options.heartbeat_timeout.count() / 1000) +
                        " s (killed, out of host memory, or its machine lost)";
              // The first cause found is the one every rank reports.
              watch_store->compareSet("failed", {}, bytes_of(encode_failure(code, static_cast<int>(r), failure)));
            }
          }
        }
      } catch (const std::exception& e) {
        failure = "lost the rendezvous store at " + endpoint + " (" + first_line(e.what()) + "): " +
                  (world.agent_store ? "torchrun's agent" : "rank 0, which serves it,") + " has ended";
      }
      if (!failure.empty()) {
        report_peer_failure(code, failure);
        return;
      }
    }
  }

  // Waits for `work`; a collective that fails because a peer ended waits for the watchdog's verdict,
  // so the error names the rank that ended rather than the socket that closed.
  void run(const c10::intrusive_ptr<c10d::Work>& work) {
    try {
      work->wait();
    } catch (const std::exception& e) {
      const auto deadline = Clock::now() + options.heartbeat_timeout + std::chrono::seconds(5);
      while (!peer_failed && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(100));
      std::lock_guard<std::mutex> lock(mutex);
      throw RuntimeFailure(verdict.empty() ? "a collective with the other ranks failed: " + first_line(e.what())
                                           : verdict,
                           world.describe());
    }
  }

  // Rank 0 gets each rank's bytes (flat uint8 tensors of any length).
  std::vector<at::Tensor> gather_flat(const at::Tensor& flat) {
    std::vector<at::Tensor> sizes_in{at::full({1}, flat.numel(), at::kLong)};
    std::vector<std::vector<at::Tensor>> sizes_out(1);
    for (int r = 0; r < world.size; ++r) sizes_out[0].push_back(at::empty({1}, at::kLong));
    c10d::AllgatherOptions ao;
    ao.timeout = kCollectiveTimeout;
    run(gloo->allgather(sizes_out, sizes_in, ao));
    int64_t longest = 1;  // Gloo wants a non-empty buffer
    for (const auto& s : sizes_out[0]) longest = std::max(longest, s.item<int64_t>());
    std::vector<at::Tensor> in{at::zeros({longest}, at::kByte)};
    in[0].narrow(0, 0, flat.numel()).copy_(flat);
    std::vector<std::vector<at::Tensor>> out;
    if (world.rank == 0) {
      out.emplace_back();
      for (int r = 0; r < world.size; ++r) out[0].push_back(at::empty({longest}, at::kByte));
    }
    c10d::GatherOptions go;
    go.rootRank = 0;
    go.timeout = kCollectiveTimeout;
    run(gloo->gather(out, in, go));
    std::vector<at::Tensor> result;
    if (world.rank == 0)
      for (int r = 0; r < world.size; ++r)
        result.push_back(out[0][static_cast<size_t>(r)].narrow(0, 0, sizes_out[0][static_cast<size_t>(r)].item<int64_t>()));
    return result;
  }
};

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

std::unique_ptr<ProcessGroup> ProcessGroup::join(const World& world, ProcessGroupOptions options) {
  if (!world.distributed()) throw RuntimeFailure("a process group needs more than one process", world.describe());
  auto impl = std::make_unique<Impl>();
  impl->world = world;
  impl->options = std::move(options);
  impl->endpoint = world.master_addr + ":" + std::to_string(world.master_port);
  impl->serves_store = world.rank == 0 && !world.agent_store;
  Impl& s = *impl;
  try {
    s.store = s.connect(s.serves_store);
    s.watch_store = s.connect(false);
  } catch (const std::exception& e) {
    throw RuntimeFailure(std::string(s.serves_store ? "cannot serve" : "cannot reach") + " the rendezvous store at " +
                             s.endpoint + " (MASTER_ADDR:MASTER_PORT): " + first_line(e.what()),
                         world.describe());
  }
  // Everyone joins before the watchdog starts counting heartbeats and before Gloo connects.
  try {
    s.store->add("joined", 1);
    const auto deadline = Clock::now() + s.options.join_timeout;
    while (s.store->add("joined", 0) < world.size) {
      if (Clock::now() > deadline)
        throw RuntimeFailure("only " + std::to_string(s.store->add("joined", 0)) + " of " + std::to_string(world.size) +
                                 " ranks joined at " + s.endpoint + " within " +
                                 std::to_string(s.options.join_timeout.count() / 1000) + " s",
                             world.describe());
      std::this_thread::sleep_for(milliseconds(50));
    }
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(s.options.join_timeout);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");  // as torch.distributed reads it
    gloo_options->devices.push_back(ifname && *ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                                      : c10d::ProcessGroupGloo::createDefaultDevice());
    s.gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo", s.store),
                                                         world.rank, world.size, gloo_options);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw RuntimeFailure("joining the other ranks at " + s.endpoint + " failed: " + first_line(e.what()),
                         world.describe());
  }
  s.watchdog = std::thread([&s] { s.watch(); });
  return std::unique_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

ProcessGroup::~ProcessGroup() {
  try {
    finish();
    if (impl_->serves_store && !impl_->peer_failed) {
      // The others' last calls go to this rank's store: it stays up until they are done (they finish
      // right after the last collective, so this is short unless one died there).
      const auto deadline = Clock::now() + impl_->options.heartbeat_timeout;
      for (int r = 1; r < impl_->world.size; ++r)
        while (!impl_->store->check({rank_key("finished", r)}) && !impl_->store->check({"failed"}) &&
               Clock::now() < deadline)
          std::this_thread::sleep_for(milliseconds(50));
    }
  } catch (const std::exception&) {  // a destructor does not throw: the peers' watchdogs see the store go
  }
  impl_->stop_watchdog();
}

const World& ProcessGroup::world() const { return impl_->world; }

std::vector<std::string> ProcessGroup::gather(const std::string& bytes) {
  at::Tensor flat = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);
  if (!bytes.empty()) std::memcpy(flat.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  std::vector<std::string> out;
  for (const auto& t : impl_->gather_flat(flat))
    out.emplace_back(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()), static_cast<size_t>(t.numel()));
  return out;
}

std::vector<at::Tensor> ProcessGroup::gather(const at::Tensor& tensor) {
  if (tensor.dim() < 1) throw RuntimeFailure("gathers tensors of at least one dimension only", "ProcessGroup::gather");
  const at::Tensor t = tensor.cpu().contiguous();
  // The element type and shape travel as text, the elements as their bytes (exact for any type).
  std::string shape = std::to_string(static_cast<int>(t.scalar_type()));
  for (auto d : t.sizes()) shape += " " + std::to_string(d);
  const std::vector<std::string> shapes = gather(shape);
  const std::vector<at::Tensor> flats = impl_->gather_flat(t.reshape({-1}).view(at::kByte));
  std::vector<at::Tensor> out;
  for (size_t r = 0; r < flats.size(); ++r) {
    std::istringstream in(shapes[r]);
    int type = 0;
    in >> type;
    std::vector<int64_t> sizes;
    for (int64_t d; in >> d;) sizes.push_back(d);
    out.push_back(flats[r].clone().view(static_cast<at::ScalarType>(type)).reshape(sizes));
  }
  return out;
}

std::string ProcessGroup::broadcast(const std::string& bytes) {
  Impl& s = *impl_;
  c10d::BroadcastOptions bo;
  bo.rootRank = 0;
  bo.timeout = kCollectiveTimeout;
  std::vector<at::Tensor> size{at::full({1}, static_cast<int64_t>(bytes.size()), at::kLong)};
  s.run(s.gloo->broadcast(size, bo));
  const int64_t n = size[0].item<int64_t>();
  std::vector<at::Tensor> flat{at::zeros({std::max<int64_t>(n, 1)}, at::kByte)};  // Gloo wants a non-empty buffer
  if (s.world.rank == 0 && n > 0) std::memcpy(flat[0].data_ptr<uint8_t>(), bytes.data(), bytes.size());
  s.run(s.gloo->broadcast(flat, bo));
  return std::string(reinterpret_cast<const char*>(flat[0].data_ptr<uint8_t>()), static_cast<size_t>(n));
}

void ProcessGroup::request_stop(int signal) {
  Impl& s = *impl_;
  if (s.stop_signal == 0) s.stop_signal = signal;
  try {
    s.store->compareSet("stop", {}, bytes_of(std::to_string(signal)));
  } catch (const std::exception&) {  // the store is gone: the peers' watchdogs find that out
  }
}

int ProcessGroup::stop_requested() const { return impl_->stop_signal; }

void ProcessGroup::settle() {
  try {
    impl_->store->set(rank_key("settled", impl_->world.rank), bytes_of("1"));
  } catch (const std::exception&) {
  }
}

void ProcessGroup::wait_settled(milliseconds timeout) {
  Impl& s = *impl_;
  const auto deadline = Clock::now() + timeout;
  try {
    for (int r = 0; r < s.world.size; ++r)
      while (r != s.world.rank && !s.store->check({rank_key("settled", r)}) &&
             !s.store->check({rank_key("finished", r)}) && !s.store->check({"failed"}) && !s.peer_failed &&
             Clock::now() < deadline)
        std::this_thread::sleep_for(milliseconds(50));
  } catch (const std::exception&) {  // the store is gone: nothing left to wait for
  }
}

void ProcessGroup::fail(int exit_code, const std::string& message) {
  Impl& s = *impl_;
  s.stop_watchdog();  // this rank's own failure is not a peer's
  if (s.peer_failed) return;  // a peer failed first: that is the cause, already published
  try {
    const std::string text = "rank " + std::to_string(s.world.rank) + " (" + s.host + ") failed: " + message;
    s.store->compareSet("failed", {}, bytes_of(encode_failure(exit_code, s.world.rank, text)));
    if (!s.serves_store) return;
    // This rank serves the store: the others read the failure from it before it goes.
    const auto deadline = Clock::now() + std::min<milliseconds>(s.options.heartbeat_timeout, std::chrono::seconds(10));
    for (int r = 1; r < s.world.size; ++r)
      while (!s.store->check({rank_key("seen", r)}) && !s.store->check({rank_key("finished", r)}) &&
             Clock::now() < deadline)
        std::this_thread::sleep_for(milliseconds(50));
  } catch (const std::exception&) {  // the store is gone: the peers find that out themselves
  }
}

void ProcessGroup::finish() {
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.finished) return;
    s.finished = true;
  }
  s.stop_watchdog();
  try {
    s.store->set(rank_key("finished", s.world.rank), bytes_of("1"));
  } catch (const std::exception&) {
  }
}

}  // namespace diffbench
