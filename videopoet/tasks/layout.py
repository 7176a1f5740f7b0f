"""Sequences in VideoPoet's layout: prefix segments, then output segments.

```
<bos> <task_X> [<bot_i> text <eot_i>] [<bov_i> visual-in <eov_i>]
[<boa_i> audio-in <eoa_i>] [<res>] | <bov_o> visual-out <eov_o>
[<boa_o> audio-out <eoa_o>] <eos>            ('|' = end of the prefix)
```

(`<res>`: the output video is not square, `builders._end_prefix`.)

A task builder appends segments to a `SequenceBuilder` and gets a `Sequence`:
the token ids, the prefix length (attention is bidirectional inside it,
causal after it) and the loss mask (True exactly on output tokens).
`to_lm_example` turns that into what the model reads.
"""

import dataclasses

import numpy as np

from videopoet import vocab as vocab_lib

# Text always starts here: `<bos> <task_X> <bot_i>` come first.
TEXT_OFFSET = 3


@dataclasses.dataclass(frozen=True)
class Sequence:
  """One example in the unified vocabulary.

  Attributes:
    tokens: int32 [s] ids.
    prefix_len: tokens [0, prefix_len) form the bidirectional prefix.
    loss_mask: bool [s], True on output tokens (those after the prefix).
    max_outputs: the most output tokens this task has for these input shapes
      (variable-prefix tasks pad their targets to it, so shapes stay fixed).
  """

  tokens: np.ndarray
  prefix_len: int
  loss_mask: np.ndarray
  max_outputs: int


class SequenceBuilder:
  """Appends segments; everything before `end_prefix()` is the prefix."""

  def __init__(self, vocab: vocab_lib.Vocab, task: str):
    self.vocab = vocab
    self._parts: list[np.ndarray] = []
    self._prefix_len: int | None = None
    self.add_special("<bos>")
    self._add(np.array([vocab.task(task)], np.int32))

  def _add(self, ids: np.ndarray) -> None:
    self._parts.append(np.asarray(ids, np.int32).reshape(-1))

  def add_special(self, *names: str) -> None:
    self._add(np.array([self.vocab.special(n) for n in names], np.int32))

  def add_segment(self, begin: str, ids: np.ndarray, end: str | None) -> None:
    """`begin ids end` (no end token when `end` is None)."""
    self.add_special(begin)
    self._add(ids)
    if end is not None:
      self.add_special(end)

  def end_prefix(self) -> None:
    if self._prefix_len is not None:
      raise ValueError("end_prefix() called twice")
    self._prefix_len = sum(len(p) for p in self._parts)

  def build(self, extra_outputs: int = 0) -> Sequence:
    """The sequence; `extra_outputs` widens `max_outputs` (see Sequence)."""
    if self._prefix_len is None:
      raise ValueError("a sequence needs end_prefix() before its outputs")
    tokens = np.concatenate(self._parts)  # [s]
    loss_mask = np.arange(len(tokens)) >= self._prefix_len  # [s]
    self.vocab.validate(tokens)
    return Sequence(
        tokens=tokens,
        prefix_len=self._prefix_len,
        loss_mask=loss_mask,
        max_outputs=int(loss_mask.sum()) + extra_outputs,
    )


def to_lm_example(seq: Sequence) -> dict[str, np.ndarray]:
  """The model's view: next-token prediction at output positions only.

  Returns:
    `inputs` int32 [s-1] (tokens without the last), `prefix_len` int32 [],
    `target_positions` int32 [n] (input positions whose next token is an
    output token), `targets` int32 [n], `weights` float32 [n] (0 on padding
    up to n = `seq.max_outputs`).
  """
  inputs = seq.tokens[:-1]  # [s-1]
  positions = np.nonzero(seq.loss_mask[1:])[0].astype(np.int32)
  n = seq.max_outputs
  if len(positions) > n:
    raise ValueError(f"{len(positions)} outputs exceed max_outputs={n}")
  pad = n - len(positions)
  targets = seq.tokens[positions + 1]
  return {
      "inputs": inputs.astype(np.int32),
      "prefix_len": np.int32(seq.prefix_len),
      "target_positions": np.pad(positions, (0, pad)),  # [n]
      "targets": np.pad(targets, (0, pad)).astype(np.int32),  # [n]
      "weights": np.pad(np.ones(len(positions), np.float32), (0, pad)),
  }
