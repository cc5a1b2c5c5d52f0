"""Settings for the whole suite.

Hypothesis runs derandomised: the same examples on every run, so CI never fails on a draw a
developer could not reproduce (property tests still explore; new seeds come with code changes).
"""

from hypothesis import settings

settings.register_profile("bascule", derandomize=True, deadline=None)
settings.load_profile("bascule")
