"""hybridcert: certificates for hybrid (token + image) randomized smoothing.

See docs/theory.md for the mathematics; ``hybridcert.theory`` implements it.
"""

__version__ = "0.1.0"
