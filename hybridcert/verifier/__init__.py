"""hybridcert.verifier (see ARCHITECTURE.md)."""
