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
// Primitives are built once per shape and kept (oneDNN JIT-compiles them).
// Float32 only; threads: oneDNN's OpenMP team of the calling thread.

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

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
  dnnl::memory::desc src, dst, user_weights, weights;
  dnnl::primitive primitive;
  // Reorders between the caller's [kt, kh, kw, c, f] kernel and `weights`
  // (absent when oneDNN takes the caller's layout as it is).
  std::unique_ptr<dnnl::reorder> to_blocked, from_blocked;
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
  const auto fwd = dnnl::convolution_forward::primitive_desc(
      eng, dnnl::prop_kind::forward_training,
      dnnl::algorithm::convolution_direct, conv->src, any, conv->dst, strides,
      pad, pad);
  const auto direction = static_cast<Direction>(dir);
  if (direction == Direction::kForward) {
    conv->weights = fwd.weights_desc();
    conv->primitive = dnnl::convolution_forward(fwd);
  } else if (direction == Direction::kBackwardData) {
    const auto pd = dnnl::convolution_backward_data::primitive_desc(
        eng, dnnl::algorithm::convolution_direct, conv->src, any, conv->dst,
        strides, pad, pad, fwd);
    conv->weights = pd.weights_desc();
    conv->primitive = dnnl::convolution_backward_data(pd);
  } else {
    const auto pd = dnnl::convolution_backward_weights::primitive_desc(
        eng, dnnl::algorithm::convolution_direct, conv->src, any, conv->dst,
        strides, pad, pad, fwd);
    conv->weights = pd.diff_weights_desc();
    conv->primitive = dnnl::convolution_backward_weights(pd);
  }
  if (conv->weights != conv->user_weights) {
    if (direction == Direction::kBackwardWeights) {
      conv->from_blocked = std::make_unique<dnnl::reorder>(
          dnnl::reorder::primitive_desc(eng, conv->weights, eng,
                                        conv->user_weights));
    } else {
      conv->to_blocked = std::make_unique<dnnl::reorder>(
          dnnl::reorder::primitive_desc(eng, conv->user_weights, eng,
                                        conv->weights));
    }
  }
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
    auto& eng = Engine();
    dnnl::stream stream(eng);
    dnnl::memory src(conv.src, eng, x), dst(conv.dst, eng, y);
    dnnl::memory user_weights(conv.user_weights, eng, k);
    dnnl::memory weights = user_weights;
    std::vector<float> blocked;
    if (conv.to_blocked || conv.from_blocked) {
      blocked.resize(conv.weights.get_size() / sizeof(float));
      weights = dnnl::memory(conv.weights, eng, blocked.data());
    }
    if (conv.to_blocked) {
      conv.to_blocked->execute(stream, user_weights, weights);
    }
    switch (direction) {
      case Direction::kForward:
        conv.primitive.execute(stream, {{DNNL_ARG_SRC, src},
                                        {DNNL_ARG_WEIGHTS, weights},
                                        {DNNL_ARG_DST, dst}});
        break;
      case Direction::kBackwardData:
        conv.primitive.execute(stream, {{DNNL_ARG_DIFF_DST, dst},
                                        {DNNL_ARG_WEIGHTS, weights},
                                        {DNNL_ARG_DIFF_SRC, src}});
        break;
      case Direction::kBackwardWeights:
        conv.primitive.execute(stream, {{DNNL_ARG_SRC, src},
                                        {DNNL_ARG_DIFF_DST, dst},
                                        {DNNL_ARG_DIFF_WEIGHTS, weights}});
        break;
    }
    if (conv.from_blocked) {
      conv.from_blocked->execute(stream, weights, user_weights);
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
ffi::Error MakeKey(Direction direction, ffi::Span<const int64_t> x,
                   ffi::Span<const int64_t> k, ffi::Span<const int64_t> y,
                   int64_t st, int64_t sh, int64_t sw, Key* key) {
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

ffi::Error Forward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> k,
                   ffi::ResultBuffer<ffi::F32> y, int64_t st, int64_t sh,
                   int64_t sw) {
  Key key;
  if (auto e = MakeKey(Direction::kForward, x.dimensions(), k.dimensions(),
                       y->dimensions(), st, sh, sw, &key);
      e.failure()) {
    return e;
  }
  return Run(Direction::kForward, x.typed_data(), k.typed_data(),
             y->typed_data(), key);
}

ffi::Error BackwardData(ffi::Buffer<ffi::F32> g, ffi::Buffer<ffi::F32> k,
                        ffi::ResultBuffer<ffi::F32> dx, int64_t st, int64_t sh,
                        int64_t sw) {
  Key key;
  if (auto e = MakeKey(Direction::kBackwardData, dx->dimensions(),
                       k.dimensions(), g.dimensions(), st, sh, sw, &key);
      e.failure()) {
    return e;
  }
  return Run(Direction::kBackwardData, dx->typed_data(), k.typed_data(),
             g.typed_data(), key);
}

ffi::Error BackwardWeights(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g,
                           ffi::ResultBuffer<ffi::F32> dk, int64_t st,
                           int64_t sh, int64_t sw) {
  Key key;
  if (auto e = MakeKey(Direction::kBackwardWeights, x.dimensions(),
                       dk->dimensions(), g.dimensions(), st, sh, sw, &key);
      e.failure()) {
    return e;
  }
  return Run(Direction::kBackwardWeights, x.typed_data(), dk->typed_data(),
             g.typed_data(), key);
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(DnnlConv3dForward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("st")
                                  .Attr<int64_t>("sh")
                                  .Attr<int64_t>("sw"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(DnnlConv3dBackwardData, BackwardData,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("st")
                                  .Attr<int64_t>("sh")
                                  .Attr<int64_t>("sw"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(DnnlConv3dBackwardWeights, BackwardWeights,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("st")
                                  .Attr<int64_t>("sh")
                                  .Attr<int64_t>("sw"));
