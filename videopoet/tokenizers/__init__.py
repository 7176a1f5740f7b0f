"""The tokenizers: MAGVIT-v2 (video), SoundStream (audio) and the pieces
they share (`common/`). They build on the core (`config_lib`, `train_lib`,
`data`) and never import the LM (tests/layering_test.py)."""
