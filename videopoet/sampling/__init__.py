"""Generation: every task at inference, and the offline sampling job.

  models.py    the LM of a workdir with the tokenizers its tokens.json names
  generate.py  the tasks (and chains) from pixels/sound/text to media
  requests.py  a prompts file's lines, validated
  job.py       `experiments.sample`: prompts in, MP4/GIF/PNG/WAV out

The decoder itself (KV cache, constraints, guidance) is `videopoet.decode`.
Nothing here imports TensorFlow.
"""
