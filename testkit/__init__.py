"""Test support shared by tests/, e2e/ and bench/: a fast HTTP function
(:mod:`testkit.function_server`) and the operator run against a real API server
(:mod:`testkit.operator_harness`).

It lives at the top of the repository, beside the packages it exercises and outside the
wheel: the shipped packages never import it (``make lint`` checks with import-linter), and
the benchmark and the demo need it as much as the tests do, so it is not part of tests/.
"""
