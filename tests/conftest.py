"""Test-session setup shared by every test module."""

import pytest

from videopoet.kernels import xla_cpu

# The suite runs with the same XLA:CPU options as the jobs (subprocesses
# inherit XLA_FLAGS).
xla_cpu.configure()


@pytest.fixture
def attention_lengths(monkeypatch):
  """(query rows, keys) of every materialized attention traced in the test
  (`videopoet.model.attention._materialized`), in order."""
  from videopoet.model import attention  # pylint: disable=g-import-not-at-top

  calls = []
  real = attention._materialized  # pylint: disable=protected-access

  def spy(q, k, v, allowed):
    calls.append((q.shape[1], k.shape[1]))
    return real(q, k, v, allowed)

  monkeypatch.setattr(attention, "_materialized", spy)
  return calls
