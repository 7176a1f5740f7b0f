"""SoundStream audio codec: causal conv encoder/decoder + residual VQ.

Import name `videopoet.tokenizers.soundstream`. The pieces:

  rvq.py            residual VQ: EMA codebooks, k-means init, dead codes,
                    per-example quantizer dropout.
  layers.py         causal (transposed) convolutions, residual units.
  model.py          encoder, decoder and the `SoundStream` codec module.
  discriminators.py multi-scale waveform and STFT discriminators.
  losses.py         mel reconstruction, hinge and feature-matching losses.
  metrics.py        mel distance, SI-SDR, ViSQOL, PESQ, STOI.
  codec.py          the user API: `load_codec`, `encode`, `decode`, tokens.
  trainer.py        the training program run by the shared harness.
"""
