// Fused CPU kernels for fnlearn's `fused=True` optimizers (torch.optim's fused=True on CPU).
//
// One loop reads params, grads and state once and writes params and state once, in place
// (XLA aliases the outputs to the donated inputs), split in chunks over XLA's intra-op
// thread pool. Each loop computes exactly the elementwise
// rule of the XLA path in fnlearn/optim/_<name>.py, in the same order of operations, on
// per-step scalars computed by the same JAX code; tests/optim/test_fused.py checks both paths
// and torch's reference trajectories. Built on first use by _fused.py.
//
// Calling convention (all kernels, see Run): one call updates any number of leaves; all
// buffers share one dtype (float32 or float64); scalars are a 1-D buffer of that dtype in the
// order the Python side lists them; attribute `flags` is a bit set (enum Flag).

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kChunk = 1 << 16;  // elements per parallel work item (256 KiB of float32)
constexpr int kSpin = 20000;         // at most this many yields before the caller sleeps

enum Flag : int64_t {
  kMaximize = 1,
  kWeightDecay = 2,  // L2: g += lambda * theta
  kMomentum = 4,     // SGD, RMSprop
  kNesterov = 8,     // SGD
  kDecoupled = 16,   // decoupled decay (AdamW, NAdam, RAdam)
  kAmsgrad = 32,     // Adam
  kCentered = 64,    // RMSprop
};

// jnp.maximum / jnp.minimum / jnp.sign: NaN in, NaN out
template <typename R>
inline R MaxNan(R a, R b) { return (a != a || a > b) ? a : b; }
template <typename R>
inline R MinNan(R a, R b) { return (a != a || a < b) ? a : b; }
template <typename R>
inline R Sign(R x) { return x > 0 ? R(1) : (x < 0 ? R(-1) : x); }

// Call f with each runtime flag turned into a compile-time constant (so every combination is
// its own branch-free, vectorized loop).
template <typename F>
void With(bool b, F&& f) {
  if (b) f(std::true_type{}); else f(std::false_type{});
}

#define FNL_LOOP _Pragma("omp simd") for (int64_t i = lo; i < hi; ++i)

template <typename R, bool MX, bool WD, bool MOM, bool NEST>
void Sgd(int64_t lo, int64_t hi, R* p, const R* G, const R* s, R* const* st) {
  const R gamma = s[0], lam = s[1], mu = s[2], omt = s[3];
  R* b = st[0];
  FNL_LOOP {
    R g = MX ? -G[i] : G[i];
    if (WD) g = g + lam * p[i];
    if (MOM) {
      const R bt = mu * b[i] + omt * g;
      g = NEST ? g + mu * bt : bt;
      b[i] = bt;
    }
    p[i] = p[i] + -gamma * g;
  }
}

template <typename R, bool MX, bool WD>
void Adagrad(int64_t lo, int64_t hi, R* p, const R* G, const R* s, R* const* st) {
  const R clr = s[0], lam = s[1], eps = s[2];
  R* sum = st[0];
  FNL_LOOP {
    R g = MX ? -G[i] : G[i];
    if (WD) g = g + lam * p[i];
    const R sq = sum[i] + g * g;
    sum[i] = sq;
    p[i] = p[i] + -clr * (g / (std::sqrt(sq) + eps));
  }
}

template <typename R, bool MX, bool WD, bool DEC, bool AMS>
void Adam(int64_t lo, int64_t hi, R* p, const R* G, const R* s, R* const* st) {
  const R omb1 = s[0], b2 = s[1], omb2 = s[2], step_size = s[3], bc2s = s[4], eps = s[5],
          lam = s[6], decay_factor = s[7];
  R *m = st[0], *v = st[1], *vmax = st[2];
  FNL_LOOP {
    const R theta = p[i];
    R g = MX ? -G[i] : G[i];
    if (WD) g = g + lam * theta;
    const R mt = m[i] + omb1 * (g - m[i]);
    const R vt = b2 * v[i] + omb2 * (g * g);
    R vhat = vt;
    if (AMS) {
      vhat = MaxNan(vmax[i], vt);
      vmax[i] = vhat;
    }
    const R denom = std::sqrt(vhat) / bc2s + eps;
    R u = -step_size * (mt / denom);
    if (DEC) u = (theta * decay_factor - theta) + u;
    m[i] = mt;
    v[i] = vt;
    p[i] = theta + u;
  }
}

template <typename R, bool MX, bool WD, bool CEN, bool MOM>
void Rmsprop(int64_t lo, int64_t hi, R* p, const R* G, const R* s, R* const* st) {
  const R gamma = s[0], a = s[1], oma = s[2], eps = s[3], lam = s[4], mu = s[5];
  R* v = st[0];
  R* b = st[1];                // only with momentum
  R* gave = st[MOM ? 2 : 1];   // only when centered
  FNL_LOOP {
    R g = MX ? -G[i] : G[i];
    if (WD) g = g + lam * p[i];
    const R vt = a * v[i] + oma * (g * g);
    R avg;
    if (CEN) {
      const R gat = gave[i] + oma * (g - gave[i]);
      avg = std::sqrt(vt - gat * gat) + eps;
      gave[i] = gat;
    } else {
      avg = std::sqrt(vt) + eps;
    }
    R u;
    if (MOM) {
      const R bt = mu * b[i] + g / avg;
      u = -gamma * bt;
      b[i] = bt;
    } else {
      u = -gamma * (g / avg);
    }
    v[i] = vt;
    p[i] = p[i] + u;
  }
}

template <typename R, bool MX, bool WD>
void Adamax(int64_t lo, int64_t hi, R* p, const R* G, const R* s, R* const* st) {
  const R b1 = s[0], omb1 = s[1], b2 = s[2], eps = s[3], lam = s[4], clr = s[5];
  R *m = st[0], *u = st[1];
  FNL_LOOP {
    R g = MX ? -G[i] : G[i];
    if (WD) g = g + lam * p[i];
    const R mt = b1 * m[i] + omb1 * g;
    const R ut = MaxNan(b2 * u[i], std::fabs(g) + eps);
    m[i] = mt;
    u[i] = ut;
    p[i] = p[i] + -clr * (mt / ut);
  }
}

template <typename R, bool MX, bool WD, bool DEC>
void Nadam(int64_t lo, int64_t hi, R* p, const R* G, const R* s, R* const* st) {
  const R neg_gamma_lam = s[0], lam = s[1], b1 = s[2], omb1 = s[3], b2 = s[4], omb2 = s[5],
          bc2 = s[6], eps = s[7], c_g = s[8], c_m = s[9];
  R *m = st[0], *v = st[1];
  FNL_LOOP {
    const R theta = p[i];
    R g = MX ? -G[i] : G[i];
    R u = 0;
    if (DEC) u = neg_gamma_lam * theta;
    if (WD) g = g + lam * theta;
    const R mt = b1 * m[i] + omb1 * g;
    const R vt = b2 * v[i] + omb2 * (g * g);
    const R denom = std::sqrt(vt / bc2) + eps;
    u = u + c_g * (g / denom) + c_m * (mt / denom);
    m[i] = mt;
    v[i] = vt;
    p[i] = theta + u;
  }
}

template <typename R, bool MX, bool WD, bool DEC>
void Radam(int64_t lo, int64_t hi, R* p, const R* G, const R* s, R* const* st) {
  const R neg_gamma_lam = s[0], lam = s[1], b1 = s[2], omb1 = s[3], b2 = s[4], omb2 = s[5],
          bc1 = s[6], eps = s[7], sqrt_bc2 = s[8], rectify = s[9], gamma = s[10], r = s[11];
  R *m = st[0], *v = st[1];
  const bool rect = rectify != 0;
  FNL_LOOP {
    const R theta = p[i];
    R g = MX ? -G[i] : G[i];
    R u = 0;
    if (DEC) u = neg_gamma_lam * theta;
    if (WD) g = g + lam * theta;
    const R mt = b1 * m[i] + omb1 * g;
    const R vt = b2 * v[i] + omb2 * (g * g);
    const R mhat = mt / bc1;
    const R l = rect ? sqrt_bc2 / (std::sqrt(vt) + eps) : R(1);
    u = u - mhat * gamma * l * r;
    m[i] = mt;
    v[i] = vt;
    p[i] = theta + u;
  }
}

template <typename R, bool MX, bool WD>
void Adadelta(int64_t lo, int64_t hi, R* p, const R* G, const R* s, R* const* st) {
  const R gamma = s[0], rho = s[1], omr = s[2], eps = s[3], lam = s[4];
  R *v = st[0], *acc = st[1];
  FNL_LOOP {
    R g = MX ? -G[i] : G[i];
    if (WD) g = g + lam * p[i];
    const R vt = rho * v[i] + omr * (g * g);
    const R uprev = acc[i];
    const R delta = std::sqrt((uprev + eps) / (vt + eps)) * g;
    v[i] = vt;
    acc[i] = rho * uprev + omr * (delta * delta);
    p[i] = p[i] + -gamma * delta;
  }
}

template <typename R, bool MX, bool WD>
void Asgd(int64_t lo, int64_t hi, R* p, const R* G, const R* s, R* const* st) {
  const R neg_lam_eta = s[0], eta = s[1], omega = s[2], mu = s[3];
  R* ax = st[0];
  const bool averaging = mu != 1;
  FNL_LOOP {
    const R theta = p[i];
    R g = MX ? -G[i] : G[i];
    if (WD) g = g + omega * theta;
    const R u = neg_lam_eta * theta - eta * g;
    const R tt = theta + u;
    const R a = ax[i];
    ax[i] = averaging ? a + (tt - a) * mu : tt;
    p[i] = tt;
  }
}

template <typename R, bool MX>
void Rprop(int64_t lo, int64_t hi, R* p, const R* G, const R* s, R* const* st) {
  const R etaminus = s[0], etaplus = s[1], smin = s[2], smax = s[3];
  R *prev = st[0], *size = st[1];
  FNL_LOOP {
    R g = MX ? -G[i] : G[i];
    const R sg = Sign(g * prev[i]);
    const R factor = sg > 0 ? etaplus : (sg < 0 ? etaminus : R(1));
    const R eta = MinNan(MaxNan(size[i] * factor, smin), smax);
    g = sg < 0 ? R(0) : g;
    prev[i] = g;
    size[i] = eta;
    p[i] = p[i] + -Sign(g) * eta;
  }
}

#undef FNL_LOOP

// The per-optimizer entry: state-buffer count and scalar count for the flags, and the loop.
struct Spec {
  int nstate;
  int nscalars;
};

Spec SpecOf(int kind, int64_t f) {
  const bool mom = f & kMomentum, cen = f & kCentered, ams = f & kAmsgrad;
  switch (kind) {
    case 0: return {mom ? 1 : 0, 4};                 // sgd
    case 1: return {1, 3};                           // adagrad
    case 2: return {ams ? 3 : 2, 8};                 // adam
    case 3: return {1 + int(mom) + int(cen), 6};     // rmsprop
    case 4: return {2, 6};                           // adamax
    case 5: return {2, 10};                          // nadam
    case 6: return {2, 12};                          // radam
    case 7: return {2, 5};                           // adadelta
    case 8: return {1, 4};                           // asgd
    default: return {2, 4};                          // rprop
  }
}

template <typename R>
void Loop(int kind, int64_t f, int64_t lo, int64_t hi, R* p, const R* g, const R* s,
          R* const* st) {
  const bool mx = f & kMaximize, wd = f & kWeightDecay, mom = f & kMomentum,
             nest = f & kNesterov, dec = f & kDecoupled, ams = f & kAmsgrad, cen = f & kCentered;
#define B(x) decltype(x)::value
  With(mx, [&](auto MX) {
    switch (kind) {
      case 0:
        With(wd, [&](auto WD) { With(mom, [&](auto MOM) { With(nest, [&](auto NE) {
          Sgd<R, B(MX), B(WD), B(MOM), B(NE)>(lo, hi, p, g, s, st); }); }); });
        break;
      case 1: With(wd, [&](auto WD) { Adagrad<R, B(MX), B(WD)>(lo, hi, p, g, s, st); }); break;
      case 2:
        With(wd, [&](auto WD) { With(dec, [&](auto DE) { With(ams, [&](auto AM) {
          Adam<R, B(MX), B(WD), B(DE), B(AM)>(lo, hi, p, g, s, st); }); }); });
        break;
      case 3:
        With(wd, [&](auto WD) { With(cen, [&](auto CE) { With(mom, [&](auto MOM) {
          Rmsprop<R, B(MX), B(WD), B(CE), B(MOM)>(lo, hi, p, g, s, st); }); }); });
        break;
      case 4: With(wd, [&](auto WD) { Adamax<R, B(MX), B(WD)>(lo, hi, p, g, s, st); }); break;
      case 5:
        With(wd, [&](auto WD) { With(dec, [&](auto DE) {
          Nadam<R, B(MX), B(WD), B(DE)>(lo, hi, p, g, s, st); }); });
        break;
      case 6:
        With(wd, [&](auto WD) { With(dec, [&](auto DE) {
          Radam<R, B(MX), B(WD), B(DE)>(lo, hi, p, g, s, st); }); });
        break;
      case 7: With(wd, [&](auto WD) { Adadelta<R, B(MX), B(WD)>(lo, hi, p, g, s, st); }); break;
      case 8: With(wd, [&](auto WD) { Asgd<R, B(MX), B(WD)>(lo, hi, p, g, s, st); }); break;
      default: Rprop<R, B(MX)>(lo, hi, p, g, s, st); break;
    }
  });
#undef B
}

struct Progress {
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex mu;
  std::condition_variable cv;
};

// Run body(c) for every c in [0, chunks) on XLA's own intra-op thread pool (no second
// threading runtime in the process). The calling thread claims chunks too and can finish all
// of them alone, so a pool whose threads are all busy never deadlocks it; a task that starts
// after the work is done finds nothing to claim and touches only the counters it co-owns.
template <typename Body>
void ParallelFor(ffi::ThreadPool& pool, int64_t chunks, const Body& body) {
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), chunks) - 1;
  if (helpers <= 0) {
    for (int64_t c = 0; c < chunks; ++c) body(c);
    return;
  }
  auto progress = std::make_shared<Progress>();
  const Body* work = &body;  // dereferenced only while a claimed chunk keeps the caller waiting
  auto drain = [progress, work, chunks]() {
    for (;;) {
      const int64_t c = progress->next.fetch_add(1);
      if (c >= chunks) return;
      (*work)(c);
      if (progress->done.fetch_add(1) + 1 == chunks) {
        std::lock_guard<std::mutex> lock(progress->mu);
        progress->cv.notify_all();
      }
    }
  };
  for (int64_t i = 0; i < helpers; ++i) {
    auto task = drain;  // Schedule takes ownership of a copy (it holds the shared counters)
    pool.Schedule(std::move(task));
  }
  drain();
  // The helpers finish their last chunks within about one chunk's time of ours: wait for that
  // by yielding (at most kSpin times) before sleeping on the condition variable, whose wake-up
  // costs tens of microseconds on a VM, a tenth of a 1M-parameter Adam step
  // (benchmarks/README.md, log item 23).
  for (int spin = 0; spin < kSpin && progress->done.load() != chunks; ++spin) {
    std::this_thread::yield();
  }
  std::unique_lock<std::mutex> lock(progress->mu);
  progress->cv.wait(lock, [&] { return progress->done.load() == chunks; });
}

// One call updates L leaves (torch's multi-tensor apply): args = [scalars, param_0..L-1,
// grad_0..L-1, state0_0..L-1, state1_0..L-1, ...], rets = [param_0..L-1, state0_0..L-1, ...].
// Work is split in chunks of at most kChunk elements across all leaves.
template <typename R>
ffi::Error Run(ffi::ThreadPool& pool, int kind, const ffi::RemainingArgs& args,
               const ffi::RemainingRets& rets, int64_t flags) {
  const Spec spec = SpecOf(kind, flags);
  const size_t per_leaf = 2 + spec.nstate;
  if (args.size() < 1 || (args.size() - 1) % per_leaf != 0 ||
      rets.size() != (args.size() - 1) / per_leaf * (1 + spec.nstate))
    return ffi::Error::InvalidArgument("fnlearn fused kernel: wrong number of buffers");
  const size_t leaves = (args.size() - 1) / per_leaf;
  auto scalars = args.get<ffi::AnyBuffer>(0);
  if (scalars.has_error()) return scalars.error();
  if (scalars->element_count() != size_t(spec.nscalars))
    return ffi::Error::InvalidArgument("fnlearn fused kernel: wrong number of scalars");
  const ffi::DataType dtype = scalars->element_type();
  const R* s = static_cast<const R*>(scalars->untyped_data());

  struct Leaf {
    int64_t n;
    const R* g;
    R* out[4];  // param, then state buffers
  };
  struct Chunk {
    int64_t leaf, lo, hi;
  };
  std::vector<Leaf> ls(leaves);
  std::vector<Chunk> chunks;
  for (size_t j = 0; j < leaves; ++j) {
    Leaf& l = ls[j];
    for (size_t k = 0; k < per_leaf; ++k) {  // k = 0 param, 1 grad, 2.. state
      auto a = args.get<ffi::AnyBuffer>(1 + k * leaves + j);
      if (a.has_error()) return a.error();
      if (k == 0) l.n = static_cast<int64_t>(a->element_count());
      if (a->element_type() != dtype || a->element_count() != size_t(l.n))
        return ffi::Error::InvalidArgument("fnlearn fused kernel: buffer dtype or size mismatch");
      if (k == 1) {
        l.g = static_cast<const R*>(a->untyped_data());
        continue;
      }
      const size_t slot = k == 0 ? 0 : k - 1;
      auto r = rets.get<ffi::AnyBuffer>(slot * leaves + j);
      if (r.has_error()) return r.error();
      if ((*r)->element_type() != dtype || (*r)->element_count() != size_t(l.n))
        return ffi::Error::InvalidArgument("fnlearn fused kernel: result dtype or size mismatch");
      l.out[slot] = static_cast<R*>((*r)->untyped_data());
      // in place: where XLA did not alias the output to its input (not donated), copy first
      const R* src = static_cast<const R*>(a->untyped_data());
      if (src != l.out[slot]) std::copy(src, src + l.n, l.out[slot]);
    }
    for (int64_t lo = 0; lo < l.n; lo += kChunk)
      chunks.push_back({int64_t(j), lo, std::min(l.n, lo + kChunk)});
  }
  ParallelFor(pool, int64_t(chunks.size()), [&](int64_t c) {
    const Chunk& ch = chunks[c];
    const Leaf& l = ls[ch.leaf];
    Loop<R>(kind, flags, ch.lo, ch.hi, l.out[0], l.g, s, l.out + 1);
  });
  return ffi::Error::Success();
}

ffi::Error Dispatch(ffi::ThreadPool& pool, int kind, ffi::RemainingArgs args,
                    ffi::RemainingRets rets, int64_t flags) {
  auto s = args.get<ffi::AnyBuffer>(0);
  if (s.has_error()) return s.error();
  switch (s->element_type()) {
    case ffi::DataType::F32: return Run<float>(pool, kind, args, rets, flags);
    case ffi::DataType::F64: return Run<double>(pool, kind, args, rets, flags);
    default: return ffi::Error::InvalidArgument("fnlearn fused kernel: float32 or float64 only");
  }
}

}  // namespace

#define FNL_KERNEL(symbol, kind)                                                            \
  static ffi::Error symbol##Impl(ffi::ThreadPool pool, ffi::RemainingArgs a,               \
                                 ffi::RemainingRets r, int64_t f) {                       \
    return Dispatch(pool, kind, a, r, f);                                                 \
  }                                                                                       \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(symbol, symbol##Impl,                                     \
                                ffi::Ffi::Bind()                                          \
                                    .Ctx<ffi::ThreadPool>()                               \
                                    .RemainingArgs()                                      \
                                    .RemainingRets()                                      \
                                    .Attr<int64_t>("flags"));

FNL_KERNEL(FnlearnFusedSgd, 0)
FNL_KERNEL(FnlearnFusedAdagrad, 1)
FNL_KERNEL(FnlearnFusedAdam, 2)
FNL_KERNEL(FnlearnFusedRmsprop, 3)
FNL_KERNEL(FnlearnFusedAdamax, 4)
FNL_KERNEL(FnlearnFusedNadam, 5)
FNL_KERNEL(FnlearnFusedRadam, 6)
FNL_KERNEL(FnlearnFusedAdadelta, 7)
FNL_KERNEL(FnlearnFusedAsgd, 8)
FNL_KERNEL(FnlearnFusedRprop, 9)
