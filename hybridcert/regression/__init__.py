"""hybridcert.regression: the regression gate (``hybridcert compare``), next to the reports (ARCHITECTURE.md).

Reads results through ``hybridcert.results`` (the one reader: the same checks as ``verify --results``), verifies
signed folders through ``hybridcert.reports`` (DSSE envelopes with ``reports.dsse``, signatures with
``reports.publish.verify_report``) and returns a typed ``gate.Comparison``. Entry points::

    from hybridcert.regression.gate import Gate, Point, compare_paths, compare_audits, load_audit
"""
