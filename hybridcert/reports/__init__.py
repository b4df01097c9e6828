"""hybridcert.reports (see ARCHITECTURE.md)."""
