"""The chaos suite: the real processes against the Mews simulator while faults land.

``python -m tests.chaos --customers 5000 --minutes 5`` is the soak (``make chaos``);
``tests/chaos/test_chaos.py`` is the short scenario that runs with the test suite.
"""
