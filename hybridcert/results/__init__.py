"""hybridcert.results: the one model of ``results.json`` and the one file writer (ARCHITECTURE.md).

Depends on ``hybridcert.theory`` only; everyone who reads or writes results (the audit runner, the verifier,
the reports, the regression gate) uses it. Submodules:

- ``hybridcert.results.atomic``: ``write_bytes_atomic`` and friends, the only way the project writes files.
"""
