"""hybridcert.results: the one model of ``results.json`` and the one file writer (ARCHITECTURE.md).

Depends on ``hybridcert.theory`` only; everyone who reads or writes results (the audit runner, the verifier,
the reports, the regression gate, the attacks) uses it (docs/results-format.md, "Reading and writing"):

- ``schema``: the pydantic models of schema ``hybridcert/results/v1`` (one definition of each class);
- ``reader``: ``read_results`` / ``parse_results``, strict and bounded, with every check the file allows on its
  own (threshold from tau and side, counts within [0, n], p_a_lower against its counts, duplicate ids, budgets
  at most ``theory.MAX_BUDGET``, frontiers against the engine; docs/theory.md §4-§6);
- ``canonical``: the bounded JSON parser and RFC 8785 canonical bytes (one encoding, no infinity);
- ``atomic``: ``write_bytes_atomic`` and friends, the only way the project writes files;
- ``stats``: certified at (d, eps), the radius matrix, rate grids and two-sided Clopper-Pearson intervals.
"""
