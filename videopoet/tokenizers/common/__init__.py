"""Shared GAN and perceptual pieces."""
