"""PyTorch twin of our MAGVIT-v2 encoder/decoder, for the speed benchmark.

The same layer list as `videopoet.tokenizers.magvit2.model` (praxis's
MAGVIT-v2): replicate-padded causal 3D convolutions, per-frame GroupNorm,
residual blocks, strided 4x4x4 downsampling, adaptive GroupNorm on the
quantized latent, depth-to-space upsampling that drops the duplicated first
frame; LFQ with the straight-through sign and the commitment loss. Channels
first ([b, c, t, h, w]), PyTorch's native layout. Random weights; it exists
to be timed against ours, not trained.
"""

import torch
from torch import nn
import torch.nn.functional as F


class CausalConv(nn.Conv3d):
  """Conv3d that pads time (k - 1, 0) and space ((k-1)//2, k//2), edge."""

  def forward(self, x):
    kt, kh, kw = self.kernel_size
    pad = ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2, kt - 1, 0)
    return super().forward(F.pad(x, pad, mode="replicate"))


def _gn_per_frame(x, groups, weight=None, bias=None):
  b, c, t, h, w = x.shape
  y = x.transpose(1, 2).reshape(b * t, c, h, w)
  y = F.group_norm(y, min(groups, c), weight, bias, eps=1e-6)
  return y.reshape(b, t, c, h, w).transpose(1, 2)


class GroupNormSpatial(nn.Module):

  def __init__(self, c, groups):
    super().__init__()
    self.groups = groups
    self.weight = nn.Parameter(torch.ones(c))
    self.bias = nn.Parameter(torch.zeros(c))

  def forward(self, x):
    return _gn_per_frame(x, self.groups, self.weight, self.bias)


class ResBlock(nn.Module):

  def __init__(self, cin, cout, groups):
    super().__init__()
    self.norm_0 = GroupNormSpatial(cin, groups)
    self.conv_0 = CausalConv(cin, cout, 3, bias=False)
    self.norm_1 = GroupNormSpatial(cout, groups)
    self.conv_1 = CausalConv(cout, cout, 3, bias=False)
    self.short = (
        CausalConv(cin, cout, 1, bias=False) if cin != cout else nn.Identity()
    )

  def forward(self, x):
    y = self.conv_0(F.silu(self.norm_0(x)))
    y = self.conv_1(F.silu(self.norm_1(y)))
    return y + self.short(x)


class CondNorm(nn.Module):

  def __init__(self, c, emb, groups):
    super().__init__()
    self.groups = groups
    self.gamma = nn.Linear(emb, c)
    self.beta = nn.Linear(emb, c)

  def forward(self, x, cond):
    # Projects the upsampled latent: in PyTorch this is faster to train than
    # projecting on the latent grid and upsampling (ours does the latter;
    # same numbers): repeat_interleave's backward is slow here.
    cond = cond.movedim(1, -1)
    g = self.gamma(cond).movedim(-1, 1)
    b = self.beta(cond).movedim(-1, 1)
    return _gn_per_frame(x, self.groups) * (1 + g) + b


class Encoder(nn.Module):

  def __init__(self, filters, mults, blocks, tdown, emb, groups):
    super().__init__()
    layers = [CausalConv(3, filters, 3, bias=False)]
    cin = filters
    for i, m in enumerate(mults):
      for _ in range(blocks):
        layers.append(ResBlock(cin, filters * m, groups))
        cin = filters * m
      if i < len(mults) - 1:
        layers.append(
            CausalConv(cin, cin, 4, stride=(2 if tdown[i] else 1, 2, 2))
        )
    layers += [ResBlock(cin, cin, groups) for _ in range(blocks)]
    layers += [
        GroupNormSpatial(cin, groups),
        nn.SiLU(),
        CausalConv(cin, emb, 1),
    ]
    self.layers = nn.Sequential(*layers)

  def forward(self, x):
    return self.layers(x)


class Decoder(nn.Module):

  def __init__(self, filters, mults, blocks, tdown, emb, groups):
    super().__init__()
    self.mults, self.blocks, self.tdown = mults, blocks, tdown
    c = filters * mults[-1]
    self.conv_first = CausalConv(emb, c, 3)
    self.mid = nn.Sequential(*[ResBlock(c, c, groups) for _ in range(blocks)])
    self.cond_norms, self.res, self.ups = (
        nn.ModuleList(),
        nn.ModuleList(),
        nn.ModuleList(),
    )
    for i in reversed(range(len(mults))):
      self.cond_norms.append(CondNorm(c, emb, groups))
      cout = filters * mults[i]
      self.res.append(
          nn.Sequential(
              *[
                  ResBlock(c if j == 0 else cout, cout, groups)
                  for j in range(blocks)
              ]
          )
      )
      c = cout
      if i > 0:
        self.ups.append(CausalConv(c, c * 4 * (2 if tdown[i - 1] else 1), 3))
    self.norm = GroupNormSpatial(c, groups)
    self.conv_last = CausalConv(c, 3, 3)

  def forward(self, z):
    cond = z
    x = self.mid(self.conv_first(z))
    n = len(self.mults)
    for k, i in enumerate(reversed(range(n))):
      x = self.res[k](self.cond_norms[k](x, cond))
      if i > 0:
        ts = 2 if self.tdown[i - 1] else 1
        x = self.ups[k](x)
        b, _, t, h, w = x.shape
        c = x.shape[1] // (4 * ts)
        # Channels as [ts, 2, 2, c], as ours (praxis's depth_to_space).
        x = x.reshape(b, ts, 2, 2, c, t, h, w).permute(0, 4, 5, 1, 6, 2, 7, 3)
        x = x.reshape(b, c, t * ts, 2 * h, 2 * w)[:, :, ts - 1 :]
        cond = (
            cond.repeat_interleave(ts, 2)
            .repeat_interleave(2, 3)
            .repeat_interleave(2, 4)[:, :, ts - 1 :]
        )
    return self.conv_last(F.silu(self.norm(x)))


class Tokenizer(nn.Module):
  """Encoder -> LFQ (sign, straight-through, commitment) -> decoder."""

  def __init__(
      self,
      filters=128,
      mults=(1, 2, 2, 4),
      blocks=4,
      tdown=(False, True, True),
      emb=18,
      groups=32,
  ):
    super().__init__()
    args = (filters, mults, blocks, tdown, emb, groups)
    self.encoder, self.decoder = Encoder(*args), Decoder(*args)

  def forward(self, video):
    z = self.encoder(video)
    q = torch.where(z > 0, 1.0, -1.0)
    zq = z + (q - z).detach()
    commit = F.mse_loss(z, q.detach())
    return self.decoder(zq), commit
