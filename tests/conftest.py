"""Test-session setup shared by every test module."""

from videopoet.kernels import xla_cpu

# The suite runs with the same XLA:CPU options as the jobs (subprocesses
# inherit XLA_FLAGS).
xla_cpu.configure()
