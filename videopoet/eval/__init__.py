"""Evaluation: standard metrics (`metrics`) and the synth_av oracle (`oracle`)."""
