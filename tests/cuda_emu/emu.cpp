// The run-time half of the CUDA host emulator (emu.h): the thread pool that runs a
// block, the block and warp barriers, the warp exchange slots and the last error.
#include "emu.h"

#include <chrono>
#include <climits>
#include <ctime>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace emu {

// --------------------------------------------------------------------------- last error
namespace {
thread_local cudaError_t t_last = cudaSuccess;
thread_local cudaError_t t_msg_code = cudaSuccess;
thread_local std::string t_msg;
thread_local std::string t_str;

const char* base_name(cudaError_t c) {
  switch (c) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}
}  // namespace

void set_last_error(cudaError_t code, const std::string& what) {
  if (t_last == cudaSuccess) t_last = code;  // sticky: the first error wins
  t_msg_code = code;
  t_msg = what;
}
cudaError_t peek_last_error() { return t_last; }
cudaError_t take_last_error() {
  const cudaError_t e = t_last;
  t_last = cudaSuccess;
  return e;
}
const char* error_string(cudaError_t code) {
  t_str = base_name(code);
  if (code != cudaSuccess && code == t_msg_code && !t_msg.empty()) t_str += " [emulator: " + t_msg + "]";
  return t_str.c_str();
}

// --------------------------------------------------------------------------- barriers
namespace {

using Clock = std::chrono::steady_clock;
std::atomic<double> g_timeout_s{60.0};

struct Abort {};  // unwinds a thread of a block that another thread has broken

struct Block;

// A 32-bit sequence number that threads sleep on until it moves (a futex on Linux: a
// wake-up costs no mutex hand-over, which matters with 256 threads on two cores).
struct Gate {
  std::atomic<uint32_t> v{0};

  // Sleeps while v == old and !*stop, until `deadline`; false on timeout.
  bool wait(uint32_t old, Clock::time_point deadline, const std::atomic<bool>* stop = nullptr) {
    while (v.load(std::memory_order_acquire) == old && !(stop && stop->load())) {
      const auto left = deadline - Clock::now();
      if (left <= Clock::duration::zero()) return false;
#if defined(__linux__)
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::min<Clock::duration>(left, std::chrono::seconds(3600))).count();
      timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
      syscall(SYS_futex, reinterpret_cast<uint32_t*>(&v), FUTEX_WAIT_PRIVATE, old, &ts, nullptr, 0);
#else
      std::this_thread::sleep_for(std::chrono::microseconds(20));
#endif
    }
    return true;
  }
  void wake_all() {
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&v), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#endif
  }
};
static_assert(sizeof(std::atomic<uint32_t>) == 4 && std::atomic<uint32_t>::is_always_lock_free);

Clock::time_point after(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// A reusable barrier over `expected` threads that knows which of them have returned.
class Barrier {
 public:
  void reset(int expected, const char* kind) {
    std::lock_guard<std::mutex> lk(m_);
    expected_ = expected;
    arrived_ = exited_ = 0;
    kind_ = kind;
    site_.clear();
  }
  // Throws std::runtime_error on misuse (the caller breaks the block), Abort when broken.
  void wait(const std::string& site, const std::atomic<bool>& broken);
  // A thread of this barrier returned from the kernel.
  void exit_thread(const std::atomic<bool>& broken, std::string* error);
  void wake() { gen_.wake_all(); }

 private:
  std::string deadlock(const char* who) const {
    return std::string(who) + ": " + std::to_string(exited_) + " of " + std::to_string(expected_) +
           " threads returned from the kernel while " + std::to_string(arrived_) + " wait at " +
           kind_ + " (" + site_ + ")";
  }
  std::mutex m_;  // guards the counts and the site; waiting happens outside it
  Gate gen_;
  int expected_ = 0, arrived_ = 0, exited_ = 0;
  const char* kind_ = "";
  std::string site_;  // call site of the current generation's first arrival
};

void Barrier::wait(const std::string& site, const std::atomic<bool>& broken) {
  std::unique_lock<std::mutex> lk(m_);
  if (broken) throw Abort{};
  if (arrived_ == 0) {
    site_ = site;
  } else if (site != site_) {
    throw std::runtime_error(std::string("divergent ") + kind_ + ": " + site + " vs " + site_);
  }
  ++arrived_;
  if (arrived_ + exited_ == expected_) {
    if (exited_ > 0) throw std::runtime_error(deadlock("deadlock"));
    arrived_ = 0;
    gen_.v.fetch_add(1, std::memory_order_release);
    lk.unlock();
    gen_.wake_all();
    return;
  }
  const uint32_t g = gen_.v.load(std::memory_order_relaxed);
  lk.unlock();
  if (!gen_.wait(g, after(g_timeout_s.load()), &broken)) {
    lk.lock();
    if (gen_.v.load() == g && !broken)
      throw std::runtime_error(std::string("timeout: ") + std::to_string(arrived_) + " of " +
                               std::to_string(expected_) + " threads waited " +
                               std::to_string(g_timeout_s.load()) + " s at " + kind_ + " (" + site_ + ")");
  }
  if (gen_.v.load(std::memory_order_acquire) == g) throw Abort{};  // broken
}

void Barrier::exit_thread(const std::atomic<bool>& broken, std::string* error) {
  std::lock_guard<std::mutex> lk(m_);
  ++exited_;
  if (!broken && arrived_ > 0 && arrived_ + exited_ == expected_) *error = deadlock("deadlock");
}

// Per-block state shared by its threads.
struct Block {
  int n_threads = 0;
  int n_warps = 0;
  Barrier block_bar;
  std::vector<Barrier> warp_bar;
  std::vector<unsigned long long> slots;  // [n_warps][2][32]
  std::atomic<bool> broken{false};
  std::mutex err_m;
  std::string error;  // the first error of the block
  int error_tid = -1;

  void fail(int tid, const std::string& what) {
    {
      std::lock_guard<std::mutex> lk(err_m);
      if (error.empty()) {
        error = what;
        error_tid = tid;
      }
    }
    broken = true;
    block_bar.wake();
    for (auto& b : warp_bar) b.wake();
  }
  unsigned warp_mask(int warp) const {
    const int lanes = std::min(32, n_threads - 32 * warp);
    return lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
  }
};

// The calling emulated thread.
thread_local Block* t_block = nullptr;
thread_local int t_tid = 0;
thread_local int t_parity = 0;

Block& current(const char* what) {
  if (t_block == nullptr) throw std::logic_error(std::string(what) + " called outside a kernel");
  return *t_block;
}

}  // namespace

int lane_id() { return t_tid & 31; }

void sync_block(const std::source_location& where) {
  Block& b = current("__syncthreads");
  const std::string site = std::string(where.file_name()) + ":" + std::to_string(where.line());
  b.block_bar.wait(site, b.broken);
}

namespace {
Barrier& warp_barrier(Block& b, unsigned mask, const char* what) {
  const int warp = t_tid / 32;
  if (mask != b.warp_mask(warp))
    throw std::runtime_error(std::string(what) + ": mask " + std::to_string(mask) +
                             " is not exactly the lanes of warp " + std::to_string(warp) + " (" +
                             std::to_string(b.warp_mask(warp)) + "); partial masks are not emulated");
  return b.warp_bar[warp];
}
}  // namespace

void sync_warp(unsigned mask, const char* what) {
  Block& b = current(what);
  warp_barrier(b, mask, what).wait(what, b.broken);
}

unsigned long long warp_exchange(unsigned mask, unsigned long long mine, int src, const char* what) {
  Block& b = current(what);
  Barrier& bar = warp_barrier(b, mask, what);
  const int warp = t_tid / 32, lane = t_tid & 31;
  unsigned long long* s = &b.slots[(2 * warp + t_parity) * 32];
  s[lane] = mine;
  bar.wait(what, b.broken);
  t_parity ^= 1;
  if (src < 0) return mine;
  if (src >= 32 || !((mask >> src) & 1u))
    throw std::runtime_error(std::string(what) + ": source lane " + std::to_string(src) +
                             " is not in the warp");
  return s[src];
}

unsigned warp_ballot(unsigned mask, bool pred, const char* what) {
  Block& b = current(what);
  Barrier& bar = warp_barrier(b, mask, what);
  const int warp = t_tid / 32, lane = t_tid & 31;
  unsigned long long* s = &b.slots[(2 * warp + t_parity) * 32];
  s[lane] = pred ? 1 : 0;
  bar.wait(what, b.broken);
  t_parity ^= 1;
  unsigned bits = 0;
  for (int l = 0; l < 32; ++l)
    if (((mask >> l) & 1u) && s[l]) bits |= 1u << l;
  return bits;
}

// --------------------------------------------------------------------------- thread pool
namespace {

class Pool {
 public:
  // Runs body on n_threads workers as the threads of block `bidx`; returns when all
  // are done or (false) after the watchdog limit.
  bool run_block(Block& blk, dim3 grid, dim3 block, uint3 bidx, const std::function<void()>& body,
                 double limit_s) {
    const int n = blk.n_threads;
    while (static_cast<int>(threads_.size()) < n) {
      const int id = static_cast<int>(threads_.size());
      threads_.emplace_back([this, id] { worker(id); });
      threads_.back().detach();  // parked forever between jobs; the process exit ends them
    }
    done_.v.store(static_cast<uint32_t>(n), std::memory_order_relaxed);
    uint32_t gen;
    {
      std::lock_guard<std::mutex> lk(job_m_);
      job_ = Job{&blk, &body, grid, block, bidx, n};
      gen = ++job_gen_;
    }
    start_.v.store(gen, std::memory_order_release);
    start_.wake_all();
    const auto deadline = after(limit_s);
    for (uint32_t left; (left = done_.v.load(std::memory_order_acquire)) != 0;)
      if (!done_.wait(left, deadline)) return false;
    return true;
  }

 private:
  struct Job {
    Block* blk;
    const std::function<void()>* body;
    dim3 grid, block;
    uint3 bidx;
    int n;
  };

  void worker(int id) {
    uint32_t seen = 0;  // jobs are numbered from 1
    for (;;) {
      const uint32_t g = start_.v.load(std::memory_order_acquire);
      if (g == seen) {
        start_.wait(g, Clock::time_point::max());
        continue;
      }
      Job job;
      {
        std::lock_guard<std::mutex> lk(job_m_);  // a consistent (job, number) snapshot
        job = job_;
        seen = job_gen_;
      }
      if (id >= job.n) continue;  // not in this block
      run_thread(id, job);
      if (done_.v.fetch_sub(1, std::memory_order_acq_rel) == 1) done_.wake_all();
    }
  }

  static void run_thread(int id, const Job& job) {
    Block& b = *job.blk;
    t_block = &b;
    t_tid = id;
    t_parity = 0;
    blockDim = job.block;
    gridDim = job.grid;
    blockIdx = job.bidx;
    threadIdx = uint3{id % job.block.x, (id / job.block.x) % job.block.y,
                      id / (job.block.x * job.block.y)};
    try {
      (*job.body)();
    } catch (const Abort&) {
    } catch (const std::exception& e) {
      b.fail(id, e.what());
    } catch (...) {
      b.fail(id, "unknown exception");
    }
    std::string err;
    b.block_bar.exit_thread(b.broken, &err);
    if (!err.empty()) b.fail(id, "__syncthreads " + err);
    err.clear();
    b.warp_bar[id / 32].exit_thread(b.broken, &err);
    if (!err.empty()) b.fail(id, "warp " + err);
    t_block = nullptr;
  }

  std::vector<std::thread> threads_;
  std::mutex job_m_;
  Job job_{nullptr, nullptr, dim3(), dim3(), uint3{0, 0, 0}, 0};
  uint32_t job_gen_ = 0;
  Gate start_, done_;
};

std::mutex g_launch_m;  // one grid at a time: the pool and the blocks are shared
bool g_poisoned = false;

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: workers may be stuck after a watchdog
  return *p;
}

std::string fmt3(unsigned x, unsigned y, unsigned z) {
  return "(" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z) + ")";
}

}  // namespace

void run_grid(const char* kernel, dim3 grid, dim3 block, const std::function<void()>& body) {
  const unsigned long long nt = 1ull * block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 ||
      grid.z > 65535 || nt == 0 || nt > 1024 || block.z > 64) {
    set_last_error(cudaErrorInvalidConfiguration,
                   std::string(kernel) + ": grid " + fmt3(grid.x, grid.y, grid.z) + ", block " +
                       fmt3(block.x, block.y, block.z));
    return;
  }
  std::lock_guard<std::mutex> lk(g_launch_m);
  if (g_poisoned) {
    set_last_error(cudaErrorLaunchFailure, "an earlier kernel never finished; restart the process");
    return;
  }
  const int n = static_cast<int>(nt);
  auto blk = std::make_unique<Block>();
  blk->n_threads = n;
  blk->n_warps = (n + 31) / 32;
  blk->warp_bar = std::vector<Barrier>(blk->n_warps);
  blk->slots.assign(static_cast<size_t>(blk->n_warps) * 64, 0);
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        blk->block_bar.reset(n, "__syncthreads");
        for (int w = 0; w < blk->n_warps; ++w)
          blk->warp_bar[w].reset(std::min(32, n - 32 * w), "a warp barrier");
        blk->broken = false;
        blk->error.clear();
        blk->error_tid = -1;
        if (!pool().run_block(*blk, grid, block, uint3{x, y, z}, body, 2.0 * g_timeout_s.load() + 1.0)) {
          g_poisoned = true;
          (void)blk.release();  // threads may still touch it
          set_last_error(cudaErrorLaunchFailure, std::string(kernel) + " block " + fmt3(x, y, z) +
                                                     ": watchdog timeout (a thread never finished)");
          return;
        }
        if (!blk->error.empty()) {
          const int t = blk->error_tid;
          set_last_error(cudaErrorLaunchFailure,
                         std::string(kernel) + " block " + fmt3(x, y, z) + " thread " +
                             fmt3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y)) +
                             ": " + blk->error);
          return;
        }
      }
}

}  // namespace emu

// --------------------------------------------------------------------------- C interface
extern "C" {
void emu_set_timeout(double seconds) { emu::g_timeout_s = seconds; }
double emu_get_timeout() { return emu::g_timeout_s.load(); }
void* emu_malloc(size_t n) {
  void* p = nullptr;
  return cudaMalloc(&p, n) == cudaSuccess ? p : nullptr;
}
void emu_free(void* p) { cudaFree(p); }
}
