"""hybridcert: certificates for hybrid (token + image) randomized smoothing.

See THEORY.md for the mathematics; ``hybridcert.theory`` implements it.
"""

__version__ = "0.1.0"
