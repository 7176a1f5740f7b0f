"""The T5 text encoder: Hugging Face's torch T5 as oracle, padding, errors."""

import numpy as np
import pytest

from tests import t5_fixture
from videopoet import config_lib
from videopoet import text_encoder


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
  return t5_fixture.tiny_t5(str(tmp_path_factory.mktemp("t5")))


def test_matches_hugging_face_torch_t5(t5_dir):
  """Same hidden states as transformers' T5EncoderModel on the checkpoint,
  with padding masked (relative buckets past the exact range included)."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  enc = text_encoder.load(t5_dir, max_len=24, batch_size=2)
  texts = ["a small red circle moves left and a large blue square moves up",
           "a green triangle"]  # fmt: skip
  emb, mask = enc.encode(texts)
  assert emb.shape == (2, 24, 32) and mask.sum(1).tolist() == [
      len(enc.tokenize(t)) for t in texts
  ]
  assert enc.tokenize(texts[1])[-1] == 1  # </s>
  ref = transformers.T5EncoderModel.from_pretrained(t5_dir).eval()
  ids = np.zeros((2, 24), np.int64)
  for i, t in enumerate(texts):
    ids[i, : mask[i].sum()] = enc.tokenize(t)
  with torch.no_grad():
    out = ref(
        input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)
    ).last_hidden_state.numpy()
  got = np.asarray(emb, np.float32)
  np.testing.assert_allclose(
      got[mask], out[mask], rtol=2e-2, atol=2e-2 * np.abs(out).max()
  )
  assert np.all(got[~mask] == 0)
  exact = text_encoder.encode_ids(
      enc.config, enc._params, ids.astype(np.int32), mask
  )
  np.testing.assert_allclose(np.asarray(exact)[mask], out[mask], atol=1e-4)


def test_padding_and_batching_do_not_change_a_caption(t5_dir):
  enc = text_encoder.load(t5_dir, max_len=16, batch_size=2)
  texts = ["a red circle", "", "a large yellow square moves down", "a"]
  emb, mask = enc.encode(texts)
  assert not mask[1].any() and np.all(np.asarray(emb[1], np.float32) == 0)
  one, _ = enc.encode([texts[2]])
  np.testing.assert_array_equal(one[0], emb[2])


def test_missing_path_is_one_line(tmp_path):
  for path, want in (("", "config.text_encoder.path is empty"),
                     (str(tmp_path), "holds no T5 checkpoint")):  # fmt: skip
    with pytest.raises(config_lib.ConfigError, match=want) as e:
      text_encoder.load(path, max_len=8)
    assert "\n" not in str(e.value)
