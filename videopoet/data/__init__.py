"""Datasets: `synth_av` (generated locally) and `video_folder` (user clips)."""
