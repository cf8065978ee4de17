"""Benchmarks: ``bench/run`` measures orgbilling against bare Django baselines and writes ``bench/RESULTS.md``.

Not tests: nothing here asserts a timing. Every figure is measured side by
side with its baseline in the same run, on PostgreSQL with gunicorn on
loopback, because the machine is noisy; the table reports medians and ratios.
The vendors are the test suite's stand-ins (``tests.scalekit_support`` for
the JWKS and tokens, ``sandbox.fake_chargebee`` for the API), served on
127.0.0.1 and counting every call they get.
"""
