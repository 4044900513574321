// Fused CPU kernels for fnlearn's `fused=True` optimizers (torch.optim's fused=True on CPU).
//
// One loop reads params, grads and state once and writes params and state once, in place
// (XLA aliases the outputs to the donated inputs), split in chunks over XLA's intra-op
// thread pool. Each loop computes exactly the elementwise
// rule of the XLA path in fnlearn/optim/_<name>.py, in the same order of operations, on
// per-step scalars computed by the same JAX code; tests/optim/test_fused.py checks both paths
// and torch's reference trajectories. Built at install time (setup.py) or by
// `python -m fnlearn.optim.build_fused`; loaded by _fused.py.
//
// Calling convention (all kernels, see Run): one call updates any number of leaves; all
// buffers share one dtype (float32 or float64); scalars are a 1-D buffer of that dtype;
// attribute `flags` is a bit set (enum Flag).
//
// The contract with _fused.py is named, and exported by FnlearnFusedContract(): the kernel
// kinds (FNL_KINDS), the flag bits (FNL_FLAGS) and each kernel's scalars in the order the loop
// reads them (FNL_<KIND>_SCALARS). _fused.py compares the export with its own tables when it
// loads the library, so a Python table and a loop that disagree fail there, not in the numbers.
//
// Code generation is portable (no -march=native): the loops are compiled once per x86 vector
// ISA (target_clones) and the widest the CPU supports is chosen when the library loads. The
// rules use no fused multiply-add (-ffp-contract=off) and only correctly rounded operations,
// so every variant gives the same bits.
//
// The build compiles this file as three translation units at once (_fused_build.py), picked
// by FNL_UNIT: 1 the float32 loops, 2 the float64 loops (each all ISAs x all rules: most of
// the compile time), 3 the FFI handlers and the contract; undefined, all of it in one unit.

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

#ifndef FNL_UNIT
#define FNL_UNIT 0
#endif
#define FNL_IN_UNIT(n) (FNL_UNIT == 0 || FNL_UNIT == (n))

#if FNL_IN_UNIT(3)
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
#endif

namespace {

constexpr int64_t kChunk = 1 << 16;  // elements per parallel work item (256 KiB of float32)
constexpr int kSpin = 20000;         // at most this many yields before the caller sleeps

// X(enumerator, bit, exported name)
#define FNL_FLAGS(X)                                                       \
  X(kMaximize, 1, MAXIMIZE)                                                \
  X(kWeightDecay, 2, WEIGHT_DECAY) /* L2: g += lambda * theta */           \
  X(kMomentum, 4, MOMENTUM)        /* SGD, RMSprop */                      \
  X(kNesterov, 8, NESTEROV)        /* SGD */                               \
  X(kDecoupled, 16, DECOUPLED)     /* decoupled decay (AdamW, NAdam, RAdam) */ \
  X(kAmsgrad, 32, AMSGRAD)         /* Adam */                              \
  X(kCentered, 64, CENTERED)       /* RMSprop */

#define FNL_FLAG_ENUMERATOR(e, bit, name) e = bit,
enum Flag : int64_t { FNL_FLAGS(FNL_FLAG_ENUMERATOR) };
#undef FNL_FLAG_ENUMERATOR

// X(number, Kind enumerator and loop, exported name, FFI symbol)
#define FNL_KINDS(X)                                   \
  X(0, Sgd, SGD, FnlearnFusedSgd)                      \
  X(1, Adagrad, ADAGRAD, FnlearnFusedAdagrad)          \
  X(2, Adam, ADAM, FnlearnFusedAdam)                   \
  X(3, Rmsprop, RMSPROP, FnlearnFusedRmsprop)          \
  X(4, Adamax, ADAMAX, FnlearnFusedAdamax)             \
  X(5, Nadam, NADAM, FnlearnFusedNadam)                \
  X(6, Radam, RADAM, FnlearnFusedRadam)                \
  X(7, Adadelta, ADADELTA, FnlearnFusedAdadelta)       \
  X(8, Asgd, ASGD, FnlearnFusedAsgd)                   \
  X(9, Rprop, RPROP, FnlearnFusedRprop)

#define FNL_KIND_ENUMERATOR(n, kind, name, symbol) k##kind = n,
enum class Kind : int { FNL_KINDS(FNL_KIND_ENUMERATOR) };
#undef FNL_KIND_ENUMERATOR

// Each kernel's per-step scalars, in the order of the 1-D scalars buffer. The names are the
// fields of the kernel's NamedTuple in _fused.py; a loop reads s[<Kind>Scalars::<name>].
#define FNL_SGD_SCALARS(X) X(gamma) X(lam) X(mu) X(one_minus_tau)
#define FNL_ADAGRAD_SCALARS(X) X(clr) X(lam) X(epsilon)
#define FNL_ADAM_SCALARS(X)                                                               \
  X(one_minus_b1) X(b2) X(one_minus_b2) X(step_size) X(bias_correction2_sqrt) X(epsilon) \
  X(lam) X(decay_factor)
#define FNL_RMSPROP_SCALARS(X) X(gamma) X(a) X(one_minus_a) X(epsilon) X(lam) X(mu)
#define FNL_ADAMAX_SCALARS(X) X(b1) X(one_minus_b1) X(b2) X(epsilon) X(lam) X(clr)
#define FNL_NADAM_SCALARS(X)                                                           \
  X(neg_gamma_lam) X(lam) X(b1) X(one_minus_b1) X(b2) X(one_minus_b2) X(bias_correction2) \
  X(epsilon) X(c_g) X(c_m)
#define FNL_RADAM_SCALARS(X)                                                           \
  X(neg_gamma_lam) X(lam) X(b1) X(one_minus_b1) X(b2) X(one_minus_b2) X(bias_correction1) \
  X(epsilon) X(sqrt_bias_correction2) X(rectify) X(gamma) X(r)
#define FNL_ADADELTA_SCALARS(X) X(gamma) X(rho) X(one_minus_rho) X(epsilon) X(lam)
#define FNL_ASGD_SCALARS(X) X(neg_lam_eta) X(eta) X(omega) X(mu)
#define FNL_RPROP_SCALARS(X) X(etaminus) X(etaplus) X(step_size_min) X(step_size_max)

#define FNL_SCALAR_ENUMERATOR(name) name,
#define FNL_SCALAR_STRUCT(kind, LIST) \
  struct kind##Scalars {              \
    enum : int { LIST(FNL_SCALAR_ENUMERATOR) kCount }; \
  };
FNL_SCALAR_STRUCT(Sgd, FNL_SGD_SCALARS)
FNL_SCALAR_STRUCT(Adagrad, FNL_ADAGRAD_SCALARS)
FNL_SCALAR_STRUCT(Adam, FNL_ADAM_SCALARS)
FNL_SCALAR_STRUCT(Rmsprop, FNL_RMSPROP_SCALARS)
FNL_SCALAR_STRUCT(Adamax, FNL_ADAMAX_SCALARS)
FNL_SCALAR_STRUCT(Nadam, FNL_NADAM_SCALARS)
FNL_SCALAR_STRUCT(Radam, FNL_RADAM_SCALARS)
FNL_SCALAR_STRUCT(Adadelta, FNL_ADADELTA_SCALARS)
FNL_SCALAR_STRUCT(Asgd, FNL_ASGD_SCALARS)
FNL_SCALAR_STRUCT(Rprop, FNL_RPROP_SCALARS)
#undef FNL_SCALAR_STRUCT
#undef FNL_SCALAR_ENUMERATOR

// jnp.maximum / jnp.minimum: NaN in, NaN out; Sign is torch's CPU sign (NaN gives 0, as Rprop needs)
template <typename R>
inline R MaxNan(R a, R b) { return (a != a || a > b) ? a : b; }
template <typename R>
inline R MinNan(R a, R b) { return (a != a || a < b) ? a : b; }
template <typename R>
inline R Sign(R x) { return x > 0 ? R(1) : (x < 0 ? R(-1) : (x == x ? x : R(0))); }

// Call f with each runtime flag turned into a compile-time constant (so every combination is
// its own branch-free, vectorized loop).
template <typename F>
void With(bool b, F&& f) {
  if (b) f(std::true_type{}); else f(std::false_type{});
}

#define FNL_LOOP _Pragma("omp simd") for (int64_t i = lo; i < hi; ++i)

template <typename R, bool MX, bool WD, bool MOM, bool NEST>
void Sgd(int64_t lo, int64_t hi, R* p, const R* G, const R* s, R* const* st) {
  using S = SgdScalars;
  const R gamma = s[S::gamma], lam = s[S::lam], mu = s[S::mu], omt = s[S::one_minus_tau];
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
  using S = AdagradScalars;
  const R clr = s[S::clr], lam = s[S::lam], eps = s[S::epsilon];
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
  using S = AdamScalars;
  const R omb1 = s[S::one_minus_b1], b2 = s[S::b2], omb2 = s[S::one_minus_b2],
          step_size = s[S::step_size], bc2s = s[S::bias_correction2_sqrt], eps = s[S::epsilon],
          lam = s[S::lam], decay_factor = s[S::decay_factor];
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
  using S = RmspropScalars;
  const R gamma = s[S::gamma], a = s[S::a], oma = s[S::one_minus_a], eps = s[S::epsilon],
          lam = s[S::lam], mu = s[S::mu];
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
  using S = AdamaxScalars;
  const R b1 = s[S::b1], omb1 = s[S::one_minus_b1], b2 = s[S::b2], eps = s[S::epsilon],
          lam = s[S::lam], clr = s[S::clr];
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
  using S = NadamScalars;
  const R neg_gamma_lam = s[S::neg_gamma_lam], lam = s[S::lam], b1 = s[S::b1],
          omb1 = s[S::one_minus_b1], b2 = s[S::b2], omb2 = s[S::one_minus_b2],
          bc2 = s[S::bias_correction2], eps = s[S::epsilon], c_g = s[S::c_g], c_m = s[S::c_m];
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
  using S = RadamScalars;
  const R neg_gamma_lam = s[S::neg_gamma_lam], lam = s[S::lam], b1 = s[S::b1],
          omb1 = s[S::one_minus_b1], b2 = s[S::b2], omb2 = s[S::one_minus_b2],
          bc1 = s[S::bias_correction1], eps = s[S::epsilon],
          sqrt_bc2 = s[S::sqrt_bias_correction2], rectify = s[S::rectify], gamma = s[S::gamma],
          r = s[S::r];
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
  using S = AdadeltaScalars;
  const R gamma = s[S::gamma], rho = s[S::rho], omr = s[S::one_minus_rho], eps = s[S::epsilon],
          lam = s[S::lam];
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
  using S = AsgdScalars;
  const R neg_lam_eta = s[S::neg_lam_eta], eta = s[S::eta], omega = s[S::omega], mu = s[S::mu];
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
  using S = RpropScalars;
  const R etaminus = s[S::etaminus], etaplus = s[S::etaplus], smin = s[S::step_size_min],
          smax = s[S::step_size_max];
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

Spec SpecOf(Kind kind, int64_t f) {
  const bool mom = f & kMomentum, cen = f & kCentered, ams = f & kAmsgrad;
  switch (kind) {
    case Kind::kSgd: return {mom ? 1 : 0, SgdScalars::kCount};
    case Kind::kAdagrad: return {1, AdagradScalars::kCount};
    case Kind::kAdam: return {ams ? 3 : 2, AdamScalars::kCount};
    case Kind::kRmsprop: return {1 + int(mom) + int(cen), RmspropScalars::kCount};
    case Kind::kAdamax: return {2, AdamaxScalars::kCount};
    case Kind::kNadam: return {2, NadamScalars::kCount};
    case Kind::kRadam: return {2, RadamScalars::kCount};
    case Kind::kAdadelta: return {2, AdadeltaScalars::kCount};
    case Kind::kAsgd: return {1, AsgdScalars::kCount};
    case Kind::kRprop: return {2, RpropScalars::kCount};
  }
  return {-1, -1};  // not a Kind: Run rejects it
}

template <typename R>
inline void Loop(Kind kind, int64_t f, int64_t lo, int64_t hi, R* p, const R* g, const R* s,
                 R* const* st) {
  const bool mx = f & kMaximize, wd = f & kWeightDecay, mom = f & kMomentum,
             nest = f & kNesterov, dec = f & kDecoupled, ams = f & kAmsgrad, cen = f & kCentered;
#define B(x) decltype(x)::value
  With(mx, [&](auto MX) {
    switch (kind) {
      case Kind::kSgd:
        With(wd, [&](auto WD) { With(mom, [&](auto MOM) { With(nest, [&](auto NE) {
          Sgd<R, B(MX), B(WD), B(MOM), B(NE)>(lo, hi, p, g, s, st); }); }); });
        break;
      case Kind::kAdagrad: With(wd, [&](auto WD) { Adagrad<R, B(MX), B(WD)>(lo, hi, p, g, s, st); }); break;
      case Kind::kAdam:
        With(wd, [&](auto WD) { With(dec, [&](auto DE) { With(ams, [&](auto AM) {
          Adam<R, B(MX), B(WD), B(DE), B(AM)>(lo, hi, p, g, s, st); }); }); });
        break;
      case Kind::kRmsprop:
        With(wd, [&](auto WD) { With(cen, [&](auto CE) { With(mom, [&](auto MOM) {
          Rmsprop<R, B(MX), B(WD), B(CE), B(MOM)>(lo, hi, p, g, s, st); }); }); });
        break;
      case Kind::kAdamax: With(wd, [&](auto WD) { Adamax<R, B(MX), B(WD)>(lo, hi, p, g, s, st); }); break;
      case Kind::kNadam:
        With(wd, [&](auto WD) { With(dec, [&](auto DE) {
          Nadam<R, B(MX), B(WD), B(DE)>(lo, hi, p, g, s, st); }); });
        break;
      case Kind::kRadam:
        With(wd, [&](auto WD) { With(dec, [&](auto DE) {
          Radam<R, B(MX), B(WD), B(DE)>(lo, hi, p, g, s, st); }); });
        break;
      case Kind::kAdadelta: With(wd, [&](auto WD) { Adadelta<R, B(MX), B(WD)>(lo, hi, p, g, s, st); }); break;
      case Kind::kAsgd: With(wd, [&](auto WD) { Asgd<R, B(MX), B(WD)>(lo, hi, p, g, s, st); }); break;
      case Kind::kRprop: Rprop<R, B(MX)>(lo, hi, p, g, s, st); break;
    }
  });
#undef B
}

}  // namespace

// The loops' entry points, compiled once per vector ISA on x86 (an ifunc picks the widest the
// CPU has when the library loads); flatten inlines Loop and the rules into each variant, so
// the whole loop is generated for that ISA. External (called from the FFI unit), so the kind
// crosses as an int.
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones) && __has_attribute(flatten)
#define FNL_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default"), flatten))
#endif
#endif
#ifndef FNL_MULTIVERSION
#define FNL_MULTIVERSION
#endif

namespace fnlearn_fused {

// hidden: shared by this library's units, not exported from it
#define FNL_LOOP_SIGNATURE(name, R)                                                  \
  __attribute__((visibility("hidden"))) void name(int kind, int64_t f, int64_t lo, \
                                                  int64_t hi, R* p, const R* g,     \
                                                  const R* s, R* const* st)

#define FNL_LOOP_DEFINITION(name, R)                                \
  FNL_MULTIVERSION FNL_LOOP_SIGNATURE(name, R) {                    \
    Loop<R>(static_cast<Kind>(kind), f, lo, hi, p, g, s, st);       \
  }

FNL_LOOP_SIGNATURE(LoopF32, float);
FNL_LOOP_SIGNATURE(LoopF64, double);
#if FNL_IN_UNIT(1)
FNL_LOOP_DEFINITION(LoopF32, float)
#endif
#if FNL_IN_UNIT(2)
FNL_LOOP_DEFINITION(LoopF64, double)
#endif

}  // namespace fnlearn_fused

#if FNL_IN_UNIT(3)
namespace {

inline void LoopOf(Kind kind, int64_t f, int64_t lo, int64_t hi, float* p, const float* g,
                   const float* s, float* const* st) {
  fnlearn_fused::LoopF32(static_cast<int>(kind), f, lo, hi, p, g, s, st);
}

inline void LoopOf(Kind kind, int64_t f, int64_t lo, int64_t hi, double* p, const double* g,
                   const double* s, double* const* st) {
  fnlearn_fused::LoopF64(static_cast<int>(kind), f, lo, hi, p, g, s, st);
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
  // costs tens of microseconds on a VM, a noticeable part of a 1M-parameter Adam step.
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
ffi::Error Run(ffi::ThreadPool& pool, Kind kind, const ffi::RemainingArgs& args,
               const ffi::RemainingRets& rets, int64_t flags) {
  const Spec spec = SpecOf(kind, flags);
  if (spec.nstate < 0) return ffi::Error::InvalidArgument("fnlearn fused kernel: unknown kind");
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
    LoopOf(kind, flags, ch.lo, ch.hi, l.out[0], l.g, s, l.out + 1);
  });
  return ffi::Error::Success();
}

ffi::Error Dispatch(ffi::ThreadPool& pool, Kind kind, ffi::RemainingArgs args,
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

#define FNL_KERNEL(n, kind, name, symbol)                                                  \
  static ffi::Error symbol##Impl(ffi::ThreadPool pool, ffi::RemainingArgs a,               \
                                 ffi::RemainingRets r, int64_t f) {                       \
    return Dispatch(pool, Kind::k##kind, a, r, f);                                        \
  }                                                                                       \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(symbol, symbol##Impl,                                     \
                                ffi::Ffi::Bind()                                          \
                                    .Ctx<ffi::ThreadPool>()                               \
                                    .RemainingArgs()                                      \
                                    .RemainingRets()                                      \
                                    .Attr<int64_t>("flags"));
FNL_KINDS(FNL_KERNEL)
#undef FNL_KERNEL

// The build stamps the library with the SHA-256 of this file, so a library built from another
// version of the source is recognised as stale (_fused_build.py defines it for every build).
#ifndef FNL_SOURCE_SHA256
#define FNL_SOURCE_SHA256 ""
#endif

// The contract, one item per line:
//   source <sha256 of _fused.cc>
//   flag <NAME> <bit>
//   kernel <number> <NAME> <FFI symbol> <scalar names in buffer order...>
#define FNL_FLAG_LINE(e, bit, name) "flag " #name " " #bit "\n"
#define FNL_KERNEL_LINE(n, kind, name, symbol) \
  "kernel " #n " " #name " " #symbol FNL_##name##_SCALARS(FNL_CONTRACT_NAME) "\n"
#define FNL_CONTRACT_NAME(name) " " #name
extern "C" __attribute__((visibility("default"))) const char* FnlearnFusedContract() {
  return "source " FNL_SOURCE_SHA256 "\n" FNL_FLAGS(FNL_FLAG_LINE) FNL_KINDS(FNL_KERNEL_LINE);
}
#endif  // FNL_IN_UNIT(3)
