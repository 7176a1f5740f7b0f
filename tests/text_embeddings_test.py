"""Text through a frozen T5 encoder end to end (a tiny RANDOM T5 saved to a
local directory): `tokenize_data` writes its caption embeddings, the LM
trains on them on every task, and the sampler encodes prompts with the
same encoder (refusing another), guidance included. The tests that run
`tokenize_data` and train are slow (`make test-slow`)."""

import dataclasses
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tokenize_data as tokenize_configs
from configs import videopoet as videopoet_config
from tests import sampling_workdir
from tests import t5_fixture
from tests import tokenize_data_test
from videopoet import config_lib
from videopoet import decode
from videopoet import lm_data
from videopoet import lm_trainer
from videopoet import pretokenize
from videopoet import sharding
from videopoet import tasks as tasks_lib
from videopoet import text_encoder
from videopoet import token_spec
from videopoet import vocab as vocab_lib
from videopoet.data import datasets
from videopoet.sampling import generate
from videopoet.sampling import models as models_lib

MAX_TEXT = 24  # The sampling workdir's text length.


@pytest.fixture(scope="module")
def t5(tmp_path_factory):
  return t5_fixture.tiny_t5(str(tmp_path_factory.mktemp("t5")))


@pytest.fixture(scope="module")
def tokens(tmp_path_factory, t5):
  """(root, T5 dir, tokens dir) of synth_av/r32 tokenized with the T5."""
  root = tmp_path_factory.mktemp("t5tokens")
  data_dir, sp = tokenize_data_test.build_data_and_text_model(root)
  cfg = pretokenize.TokenizeConfig(
      data=datasets.DataConfig(tokenize_data_test._NAME, data_dir),
      splits=("train", "validation"), text_tokenizer=sp, random_init=True,
      batch_size=4, max_text_len=MAX_TEXT,
      text_encoder=text_encoder.TextEncoderConfig(path=t5, batch_size=3),
      random=pretokenize.RandomInitConfig(**tokenize_configs.random_tokenizers()),
  )  # fmt: skip
  tok = pretokenize.load_tokenizers(cfg)
  out = str(root / "tokens")
  sizes = {
      s: pretokenize.tokenize_split(cfg, tok, s, out)["examples"]
      for s in cfg.splits
  }
  pretokenize.write_metadata(out, tok, sizes)
  return root, t5, out


def _records(out, split="train"):
  src = lm_data.ArrayRecordSource(out, split)
  return [src[i] for i in range(len(src))]


@pytest.mark.slow
def test_records_hold_the_encoders_caption_embeddings(tokens):
  _, t5, out = tokens
  spec = token_spec.read(out)
  assert spec.text_encoder == t5 and spec.text_embed_dim == 32
  assert spec.text_encoder_sha256 == text_encoder.checkpoint_sha256(t5)
  assert spec.max_text_len == MAX_TEXT
  recs = _records(out)
  enc = text_encoder.load(t5, MAX_TEXT, batch_size=1)
  emb, mask = enc.encode([r["caption"] for r in recs])
  assert all(r["caption"] for r in recs) and mask.any(1).all()
  for r, e, m in zip(recs, emb, mask):
    assert r["text_embeddings"].dtype == e.dtype == jnp.bfloat16
    assert r["text_embeddings"].shape == (MAX_TEXT, 32)
    np.testing.assert_array_equal(r["text_embeddings"], e)
    np.testing.assert_array_equal(r["text_embeddings_mask"], m)
    assert r["text"].shape == (MAX_TEXT,)  # The ids stay beside them.


def _config(out, **tasks):
  c = videopoet_config.get_config("tiny")
  c.data.data_dir, c.data.batch_size, c.data.eval_batches = out, 2, 0
  c.tasks.text_mode = "embeddings"
  c.tasks.update(tasks)
  return c


@pytest.mark.slow
def test_lm_trains_on_every_task_in_embeddings_mode(tokens):
  _, _, out = tokens
  c = lm_trainer.parse(_config(out))
  assert c.model.text_embed_dim == 32 and c.vocab.text_size == 0
  assert c.mixture.tasks == vocab_lib.TASK_NAMES  # All 11.
  program = lm_trainer.make_program(c, None)
  src = lm_data.ArrayRecordSource(out, "train")
  batches = {}
  for t in c.mixture.tasks:
    s = lm_data.TaskSource(src, t, c.vocab, c.tasks, c.spec)
    batches[t] = lm_trainer._stack([s[i] for i in range(2)])
    emb = batches[t]["text_embeddings"]
    assert emb.shape == (2, MAX_TEXT, 32)
    assert (np.abs(emb).sum() > 0) == (t in tasks_lib.USES_TEXT), t
  with nn.logical_axis_rules(list(sharding.LOGICAL_AXIS_RULES)):
    state = program.init(jax.random.key(0))
    step = jax.jit(program.step, static_argnums=3)
    first = {}
    for t in c.mixture.tasks:  # One step on each task's shape...
      state, m = step(state, batches[t], None, t)
      first[t] = float(m[f"train/{t}/loss"])
    for t in ("text_to_video", "unconditional_video"):  # ...then again.
      state, m = step(state, batches[t], None, t)
      assert float(m[f"train/{t}/loss"]) < first[t], t
  assert all(np.isfinite(v) for v in first.values()), first
  # The projection learns from captions only: no gradient without text.
  model = lm_trainer.transformer.VideoPoetLM(c.model)
  params = nn.unbox(state["params"])

  def proj_grad(batch):
    loss = lambda p: model.apply({"params": p}, batch, method="loss")[0].sum()
    g = jax.grad(loss)(params)["text_projection"]["kernel"]
    return float(jnp.abs(g).sum())

  assert proj_grad(batches["text_to_video"]) > 0
  assert proj_grad(batches["unconditional_video"]) == 0


@pytest.mark.slow
def test_text_dropout_zeroes_the_embeddings_and_the_mask(tokens):
  _, _, out = tokens
  c = lm_trainer.parse(_config(out, text_dropout=1.0))
  src = lm_data.ArrayRecordSource(out, "train")
  ex = lm_data.TaskSource(src, "text_to_video", c.vocab, c.tasks, c.spec)[0]
  assert not np.any(ex["text_embeddings"])
  assert not np.any(ex["inputs"] == c.vocab.special("<text_emb>"))
  kept = lm_data.TaskSource(
      src,
      "text_to_video",
      c.vocab,
      dataclasses.replace(c.tasks, text_dropout=0.0),
      c.spec,
  )[0]
  n = int(np.sum(kept["inputs"] == c.vocab.special("<text_emb>")))
  assert n == int(src[0]["text_embeddings_mask"].sum()) > 0


def test_missing_encoder_is_one_line(tmp_path):
  ids_only = tmp_path / "ids_only"  # Tokens written without an encoder.
  token_spec.write(str(ids_only), lm_data.RandomConfig().spec())
  errors = []
  for make in (
      lambda: lm_trainer.parse(_config(str(ids_only))),
      lambda: pretokenize.TokenizeConfig(
          data=datasets.DataConfig("synth_av/tiny", "d"),
          text_tokenizer="t.model",
          text_encoder=text_encoder.TextEncoderConfig(path=str(tmp_path)),
      ),  # fmt: skip
  ):
    with pytest.raises(config_lib.ConfigError) as e:
      make()
    errors.append(str(e.value))
  assert "tokens carry no text embeddings" in errors[0]
  assert "config.text_encoder.path" in errors[0]
  assert f"config.text_encoder.path={str(tmp_path)!r} holds no T5" in errors[1]
  assert not any("\n" in m for m in errors), errors


@pytest.fixture(scope="module")
def gen(tmp_path_factory, t5):
  """A Generator of an LM that embeds its text with `t5`: the LM and its
  text encoder only (no video tokenizer or codec: codes, not media)."""
  root = tmp_path_factory.mktemp("t5sampling")
  lm = models_lib.load_lm(sampling_workdir.make(str(root), text_encoder=t5))
  models = models_lib.Models(
      lm=lm, video=None, codec=None, text=None,
      text_encoder=models_lib.load_text_encoder(lm),
  )  # fmt: skip
  return generate.Generator(models)


def test_sampler_prompts_are_embedded_as_in_training(t5, gen):
  """The sampler's prompt embeddings are tokenize_data's for the caption
  (its function, in batches of 3), bit for bit."""
  assert gen.models.text_encoder.path == t5
  enc = text_encoder.load(t5, MAX_TEXT, batch_size=3)
  captions = t5_fixture.CAPTIONS[:5]
  records = pretokenize._caption_embeddings(
      pretokenize.Tokenizers(None, None, None, gen.spec, text_encoder=enc),
      captions,
  )
  for caption, rec in zip(captions, records):
    fields = gen.text_fields(caption)
    np.testing.assert_array_equal(
        fields["text_embeddings"], rec["text_embeddings"]
    )
    np.testing.assert_array_equal(
        fields["text_embeddings_mask"], rec["text_embeddings_mask"]
    )
  assert records[4]["text_embeddings"].dtype == jnp.bfloat16
  # What the LM projects: the same function of the same fields.
  rec = records[4]
  ex = {"video": gen._zeros_video(), **fields}
  seq = tasks_lib.build(
      "text_to_video", ex, gen.vocab, gen.task_config,
      np.random.default_rng(0), gen.spec,
  )  # fmt: skip
  want = tasks_lib.text_embeddings(rec, seq, gen.vocab, gen.spec)
  np.testing.assert_array_equal(gen._embeddings(ex, seq), want)
  with pytest.raises(generate.RequestError, match="T5 tokens"):
    gen.text_fields(" ".join(["red"] * 40))


def test_guidance_one_equals_none_and_negative_prompts_count(gen):
  """As with ids: scale 1 with the unconditional rows samples what no
  guidance does; at scale 5 they change the samples, and a negative prompt
  (embedded by the same encoder) changes them again."""
  ex = {"video": gen._zeros_video(1), **gen.text_fields("a red circle")}
  build = lambda e: tasks_lib.build(
      "text_to_image", e, gen.vocab, gen.task_config,
      np.random.default_rng(0), gen.spec,
  )  # fmt: skip
  seq = build(ex)
  p, out = seq.prefix_len, decode.output_layout(seq, gen.vocab)
  two = lambda x: jnp.asarray(np.repeat(np.asarray(x)[None], 2, 0))

  def uncond(negative):
    ex_u = dict(ex, **gen.text_fields(negative))
    seq_u = build(ex_u)
    return two(seq_u.tokens[:p]), two(gen._embeddings(ex_u, seq_u))

  prefix, text = two(seq.tokens[:p]), two(gen._embeddings(ex, seq))
  (none, none_text), (neg, neg_text) = uncond(None), uncond("a blue square")
  assert not np.any(none_text) and np.any(text) and np.any(neg_text)
  key, params = jax.random.key(7), gen.models.lm.params

  def run(g, guided, u=none, u_text=none_text):
    cfg = decode.SamplingConfig(guidance=g)
    fn = gen._sampler(out, cfg, guided, 2)
    with nn.logical_axis_rules(list(sharding.LOGICAL_AXIS_RULES)):
      if not guided:
        return np.asarray(fn(params, prefix, key, None, text, None))
      return np.asarray(fn(params, prefix, key, u, text, u_text))

  plain = run(1.0, False)
  np.testing.assert_array_equal(plain, run(1.0, True))
  guided = run(5.0, True)
  assert not np.array_equal(plain, guided)
  assert not np.array_equal(guided, run(5.0, True, neg, neg_text))
  # The Generator at scale 1 is that unguided sampler (seed 7: key 7).
  one = gen.run("text_to_image", ex, 2, 7, decode.SamplingConfig())
  np.testing.assert_array_equal(one.video, gen._parse(seq, plain, ex).video)


def test_a_different_encoder_is_refused_by_name(gen, tmp_path):
  other = t5_fixture.tiny_t5(str(tmp_path / "other"), seed=1)
  lm = gen.models.lm
  spec = dataclasses.replace(lm.spec, text_encoder=other)
  with pytest.raises(config_lib.ConfigError) as e:
    models_lib.load_text_encoder(dataclasses.replace(lm, spec=spec))
  assert f"the text encoder {other} is not the one" in str(e.value)
  gone = dataclasses.replace(spec, text_encoder=str(tmp_path / "gone"))
  with pytest.raises(
      config_lib.ConfigError, match="named in tokens.json is gone"
  ):
    models_lib.load_text_encoder(dataclasses.replace(lm, spec=gone))


def test_every_task_batches_embeddings_and_initializes():
  """Random records with embeddings: every task's examples carry them
  (zeros without text), and the program initializes on the mixture's first
  task, unconditional_video."""
  c = videopoet_config.get_config("tiny")
  c.data.source, c.data.random.text_embed_dim = "random", 8
  c.tasks.text_mode, c.data.eval_batches = "embeddings", 0
  c.tasks.text_dropout = 0.0
  c.data.random_size = 4
  parsed = lm_trainer.parse(c)
  assert parsed.model.text_embed_dim == 8
  program = lm_trainer.make_program(parsed, None)
  for t, batch in program.groups.items():
    assert batch["text_embeddings"].shape == (8, 16, 8), t
  src = lm_data.RandomSource(parsed.spec, 4)
  for t in vocab_lib.TASK_NAMES:
    ex = lm_data.TaskSource(src, t, parsed.vocab, parsed.tasks, parsed.spec)[1]
    assert bool(np.any(ex["text_embeddings"])) == (t in tasks_lib.USES_TEXT)
  with nn.logical_axis_rules(list(sharding.LOGICAL_AXIS_RULES)):
    state = jax.eval_shape(program.init, jax.random.key(0))
  kernel = state["params"]["text_projection"]["kernel"]
  assert nn.unbox(kernel).shape == (8, 64)
