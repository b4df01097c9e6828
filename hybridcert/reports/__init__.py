"""hybridcert.reports: results bundle, HTML/PDF reports, signatures and their verification (ARCHITECTURE.md).

Public entry points (import the submodules; this package imports nothing heavy on its own)::

    from hybridcert.reports.bundle import load_results, parse_results, canonical_bytes   # results.json schema
    from hybridcert.reports.keys import init_identity, load_identity, demo_identity     # signing identities
    from hybridcert.reports.publish import render_and_sign, verify_report, demo_report, sign_html_report
    from hybridcert.reports.html import environment, render                               # templates for others
"""
