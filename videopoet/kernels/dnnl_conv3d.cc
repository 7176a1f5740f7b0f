// 3D convolutions on oneDNN as XLA FFI custom calls (CPU).
//
// XLA:CPU has no fast 3D convolution: its native one runs at ~40 GFLOP/s on
// a 2-core AVX-512 machine and its kernel gradients worse, while oneDNN's
// brgconv kernels (what PyTorch's CPU conv3d uses) reach ~300. Three targets,
// one per direction of a VALID (already padded) strided 3D convolution on
// channels-last tensors:
//
//   dnnl_conv3d_fwd            (x [b, t, h, w, c], k [kt, kh, kw, c, f]) -> y
//   dnnl_conv3d_bwd_data       (g [b, t', h', w', f], k) -> dx [b, t, h, w, c]
//   dnnl_conv3d_bwd_weights    (x, g) -> dk [kt, kh, kw, c, f]
//
// Attributes st, sh, sw (int64) are the strides; every dimension of y is
// exactly (n - k) / s + 1 (the caller crops what no window reaches).
// Activations stay in XLA's buffers (oneDNN's `ndhwc`); the kernel is
// reordered to and from oneDNN's blocked layout per call (it is small).
// Primitives are built once per shape and kept (oneDNN JIT-compiles them),
// each with its own scratchpads. Calls run one at a time (a process-wide
// lock), each on the calling thread's OpenMP team. Float32 only.

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

enum class Direction { kForward, kBackwardData, kBackwardWeights };

// b, t, h, w, c, f, kt, kh, kw, st, sh, sw and the direction.
using Key = std::array<int64_t, 13>;

struct Conv {
  dnnl::memory::desc src, dst, user_weights;
  dnnl::primitive primitive;
  // Reorders between the caller's [kt, kh, kw, c, f] kernel and the layout
  // oneDNN chose, held in `weights` (absent when oneDNN takes the caller's
  // layout as it is).
  std::unique_ptr<dnnl::reorder> to_blocked, from_blocked;
  dnnl::memory weights;
  // Buffers owned by this entry, used under the run lock.
  dnnl::memory scratchpad, reorder_scratchpad;
};

dnnl::engine& Engine() {
  static auto* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

std::string Describe(const Key& k) {
  std::string s = "x [";
  for (int i = 0; i < 5; ++i) s += std::to_string(k[i]) + (i < 4 ? ", " : "]");
  s += " kernel [" + std::to_string(k[6]) + ", " + std::to_string(k[7]) +
       ", " + std::to_string(k[8]) + ", " + std::to_string(k[4]) + ", " +
       std::to_string(k[5]) + "] strides (" + std::to_string(k[9]) + ", " +
       std::to_string(k[10]) + ", " + std::to_string(k[11]) + ")";
  return s;
}

std::unique_ptr<Conv> Build(const Key& k) {
  const auto [b, t, h, w, c, f, kt, kh, kw, st, sh, sw, dir] = k;
  auto& eng = Engine();
  const dnnl::memory::dims src_dims = {b, c, t, h, w};
  const dnnl::memory::dims wei_dims = {f, c, kt, kh, kw};
  const dnnl::memory::dims dst_dims = {
      b, f, (t - kt) / st + 1, (h - kh) / sh + 1, (w - kw) / sw + 1};
  const dnnl::memory::dims strides = {st, sh, sw}, pad = {0, 0, 0};
  auto conv = std::make_unique<Conv>();
  conv->src = dnnl::memory::desc(src_dims, dt::f32, tag::ndhwc);
  conv->dst = dnnl::memory::desc(dst_dims, dt::f32, tag::ndhwc);
  conv->user_weights = dnnl::memory::desc(wei_dims, dt::f32, tag::dhwio);
  const auto any = dnnl::memory::desc(wei_dims, dt::f32, tag::any);
  dnnl::memory::desc weights, scratchpad;  // As oneDNN chose them.
  // Scratchpads are ours (kept with the entry, used under the run lock):
  // oneDNN's own would be shared by every thread running the primitive.
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const auto fwd = dnnl::convolution_forward::primitive_desc(
      eng, dnnl::prop_kind::forward_training,
      dnnl::algorithm::convolution_direct, conv->src, any, conv->dst, strides,
      pad, pad, attr);
  const auto direction = static_cast<Direction>(dir);
  if (direction == Direction::kForward) {
    weights = fwd.weights_desc();
    scratchpad = fwd.scratchpad_desc();
    conv->primitive = dnnl::convolution_forward(fwd);
  } else if (direction == Direction::kBackwardData) {
    const auto pd = dnnl::convolution_backward_data::primitive_desc(
        eng, dnnl::algorithm::convolution_direct, conv->src, any, conv->dst,
        strides, pad, pad, fwd, attr);
    weights = pd.weights_desc();
    scratchpad = pd.scratchpad_desc();
    conv->primitive = dnnl::convolution_backward_data(pd);
  } else {
    const auto pd = dnnl::convolution_backward_weights::primitive_desc(
        eng, dnnl::algorithm::convolution_direct, conv->src, any, conv->dst,
        strides, pad, pad, fwd, attr);
    weights = pd.diff_weights_desc();
    scratchpad = pd.scratchpad_desc();
    conv->primitive = dnnl::convolution_backward_weights(pd);
  }
  conv->scratchpad = dnnl::memory(scratchpad, eng);
  dnnl::memory::desc reorder_scratchpad;
  if (weights != conv->user_weights) {
    if (direction == Direction::kBackwardWeights) {
      const auto pd = dnnl::reorder::primitive_desc(
          eng, weights, eng, conv->user_weights, attr);
      reorder_scratchpad = pd.scratchpad_desc();
      conv->from_blocked = std::make_unique<dnnl::reorder>(pd);
    } else {
      const auto pd = dnnl::reorder::primitive_desc(
          eng, conv->user_weights, eng, weights, attr);
      reorder_scratchpad = pd.scratchpad_desc();
      conv->to_blocked = std::make_unique<dnnl::reorder>(pd);
    }
    conv->weights = dnnl::memory(weights, eng);
  }
  conv->reorder_scratchpad = dnnl::memory(reorder_scratchpad, eng);
  return conv;
}

// The primitives of one shape and direction, built on first use.
const Conv& Get(const Key& key) {
  static auto* mu = new std::mutex;
  static auto* cache = new std::map<Key, std::unique_ptr<Conv>>;
  std::lock_guard<std::mutex> lock(*mu);
  auto& entry = (*cache)[key];
  if (!entry) entry = Build(key);
  return *entry;
}

// Runs one direction. `x`, `k`, `y` hold the activations, kernel and output
// of the forward convolution; in the backward directions `y` is the output
// gradient and `x` or `k` the gradient written.
ffi::Error Run(Direction direction, float* x, float* k, float* y,
               const Key& key) {
  try {
    const Conv& conv = Get(key);
    // One call at a time. XLA runs independent custom calls on several
    // threads at once (e.g. a layer's two gradients), and each oneDNN call
    // already keeps every core busy: two OpenMP teams would oversubscribe
    // the cores and stall in each other's spin barriers (16 kernel
    // gradients of equal shapes in one program: 28 -> 11 ms per program).
    static auto* run_mu = new std::mutex;
    std::lock_guard<std::mutex> run_lock(*run_mu);
    auto& eng = Engine();
    dnnl::stream stream(eng);
    dnnl::memory src(conv.src, eng, x), dst(conv.dst, eng, y);
    dnnl::memory user_weights(conv.user_weights, eng, k);
    const bool blocked = conv.to_blocked || conv.from_blocked;
    const dnnl::memory& weights = blocked ? conv.weights : user_weights;
    const dnnl::memory& scratchpad = conv.scratchpad;
    const dnnl::memory& reorder_scratchpad = conv.reorder_scratchpad;
    if (conv.to_blocked) {
      conv.to_blocked->execute(stream,
                               {{DNNL_ARG_FROM, user_weights},
                                {DNNL_ARG_TO, weights},
                                {DNNL_ARG_SCRATCHPAD, reorder_scratchpad}});
    }
    // The argument each of (x, k, y) is, by direction.
    const auto [x_arg, k_arg, y_arg] =
        direction == Direction::kForward
            ? std::array{DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST}
            : (direction == Direction::kBackwardData
                   ? std::array{DNNL_ARG_DIFF_SRC, DNNL_ARG_WEIGHTS,
                                DNNL_ARG_DIFF_DST}
                   : std::array{DNNL_ARG_SRC, DNNL_ARG_DIFF_WEIGHTS,
                                DNNL_ARG_DIFF_DST});
    conv.primitive.execute(stream, {{x_arg, src},
                                    {k_arg, weights},
                                    {y_arg, dst},
                                    {DNNL_ARG_SCRATCHPAD, scratchpad}});
    if (conv.from_blocked) {
      conv.from_blocked->execute(stream,
                                 {{DNNL_ARG_FROM, weights},
                                  {DNNL_ARG_TO, user_weights},
                                  {DNNL_ARG_SCRATCHPAD, reorder_scratchpad}});
    }
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal,
                      std::string("oneDNN conv3d on ") + Describe(key) +
                          ": " + e.what());
  }
  return ffi::Error::Success();
}

// Checks ranks and that y's shape is the VALID strided output of x and k.
ffi::Error MakeKey(ffi::Span<const int64_t> x, ffi::Span<const int64_t> k,
                   ffi::Span<const int64_t> y, int64_t st, int64_t sh,
                   int64_t sw, Direction direction, Key* key) {
  if (x.size() != 5 || k.size() != 5 || y.size() != 5) {
    return ffi::Error::InvalidArgument(
        "dnnl_conv3d: x, kernel and output must be rank 5");
  }
  *key = {x[0], x[1], x[2], x[3], x[4], k[4], k[0], k[1], k[2], st, sh, sw,
          static_cast<int64_t>(direction)};
  const bool ok = st > 0 && sh > 0 && sw > 0 && k[3] == x[4] &&
                  y[0] == x[0] && y[4] == k[4] &&
                  y[1] == (x[1] - k[0]) / st + 1 && x[1] >= k[0] &&
                  y[2] == (x[2] - k[1]) / sh + 1 && x[2] >= k[1] &&
                  y[3] == (x[3] - k[2]) / sw + 1 && x[3] >= k[2] &&
                  (x[1] - k[0]) % st == 0 && (x[2] - k[1]) % sh == 0 &&
                  (x[3] - k[2]) % sw == 0;
  if (!ok) {
    return ffi::Error::InvalidArgument(
        "dnnl_conv3d: shapes do not make a VALID convolution whose windows "
        "cover x exactly: " + Describe(*key));
  }
  return ffi::Error::Success();
}

// One handler per direction: its two operands and result are, in order,
// (x, k) -> y, (g, k) -> dx and (x, g) -> dk, where the forward convolution
// maps x and k to y (g: the output gradient, same shape as y).
template <Direction direction>
ffi::Error Handler(ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b,
                   ffi::ResultBuffer<ffi::F32> out, int64_t st, int64_t sh,
                   int64_t sw) {
  struct Operand {
    float* data;
    ffi::Span<const int64_t> dims;
  };
  const Operand first{a.typed_data(), a.dimensions()};
  const Operand second{b.typed_data(), b.dimensions()};
  const Operand result{out->typed_data(), out->dimensions()};
  using Operands = std::array<Operand, 3>;  // x, k, y
  const auto [x, k, y] =
      direction == Direction::kForward
          ? Operands{first, second, result}
          : (direction == Direction::kBackwardData
                 ? Operands{result, second, first}
                 : Operands{first, result, second});
  Key key;
  if (auto e = MakeKey(x.dims, k.dims, y.dims, st, sh, sw, direction, &key);
      e.failure()) {
    return e;
  }
  return Run(direction, x.data, k.data, y.data, key);
}

auto Binding() {
  return ffi::Ffi::Bind()
      .Arg<ffi::Buffer<ffi::F32>>()
      .Arg<ffi::Buffer<ffi::F32>>()
      .Ret<ffi::Buffer<ffi::F32>>()
      .Attr<int64_t>("st")
      .Attr<int64_t>("sh")
      .Attr<int64_t>("sw");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(DnnlConv3dForward,
                              Handler<Direction::kForward>, Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(DnnlConv3dBackwardData,
                              Handler<Direction::kBackwardData>, Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(DnnlConv3dBackwardWeights,
                              Handler<Direction::kBackwardWeights>, Binding());
