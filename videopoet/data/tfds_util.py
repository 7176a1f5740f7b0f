"""TFDS helpers shared by our dataset builders.

Our datasets are written as ArrayRecord: random access by index
(`tfds.data_source`), which a deterministic, checkpointable Grain pipeline
needs. TFDS 4.9 cannot build a `tf.data` pipeline over ArrayRecord files
(`.as_dataset()` raises NotImplementedError), so `tfds.load(...)` would fail.
`ArrayRecordAsDataset` gives our builders a `tf.data` view that reads the
same records through the random-access source: one copy on disk, both APIs.
TensorFlow is imported only there: training reads through
`tfds.data_source`, which does not need it.
"""

import numpy as np
import tensorflow_datasets as tfds

_ARRAY_RECORD = tfds.core.file_adapters.FileFormat.ARRAY_RECORD


class ArrayRecordAsDataset:
  """Mixin for a `GeneratorBasedBuilder`: `tfds.load` on ArrayRecord builds.

  Put it before `tfds.core.GeneratorBasedBuilder` in the bases. Examples come
  decoded exactly as `tfds.data_source` gives them, in index order (shuffled
  per epoch when `shuffle_files=True`, seeded by
  `read_config.shuffle_seed`).
  """

  def _as_dataset(
      self, split, decoders=None, read_config=None, shuffle_files=False
  ):
    if self.info.file_format != _ARRAY_RECORD:
      return super()._as_dataset(
          split=split,
          decoders=decoders,
          read_config=read_config,
          shuffle_files=shuffle_files,
      )
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    if decoders:
      raise NotImplementedError(
          "custom decoders are not supported on ArrayRecord builds"
      )
    source = self.as_data_source(split=split)
    signature = self.info.features.get_tensor_spec()
    seed = getattr(read_config, "shuffle_seed", None)

    def generate():
      order = np.arange(len(source))
      if shuffle_files:
        np.random.default_rng(seed).shuffle(order)
      for i in order:
        yield source[int(i)]

    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return ds.apply(tf.data.experimental.assert_cardinality(len(source)))
