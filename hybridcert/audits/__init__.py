"""hybridcert.audits (see ARCHITECTURE.md)."""
