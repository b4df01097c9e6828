"""Independent checks of ``hybridcert.theory`` through its public API (ARCHITECTURE.md).

One module per check, each returning a ``CheckResult`` (result.py):

* ``symbolic``   SymPy derivations evaluated against the theory at random points;
* ``highprec``   the joint Neyman-Pearson problem at 50 digits from raw token outcomes and ``mpmath.quad``;
* ``properties`` Hypothesis properties, run at run time;
* ``interval``   interval-arithmetic proofs that a reported radius / budget is certified.

``runner.run_verification(Grid.quick())`` assembles them (``hybridcert verify``); ``results.verify_results``
proves every certificate of an audit's results.json (``hybridcert verify --results``); ``html.render_html``
renders either. Every check takes the implementation under test (``impl.Implementation``, default the real
theory) so that tests can show it catches deliberately broken ones.
"""

from hybridcert.verifier.impl import THEORY, Implementation
from hybridcert.verifier.interval import Proof, prove_budget, prove_frontier, prove_worst_case
from hybridcert.verifier.reference import NoiseParams
from hybridcert.verifier.result import CheckResult

__all__ = [
    "THEORY",
    "CheckResult",
    "Implementation",
    "NoiseParams",
    "Proof",
    "prove_budget",
    "prove_frontier",
    "prove_worst_case",
]
