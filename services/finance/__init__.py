"""ASAN Finans: a bank reads a citizen's state data only with consent; the citizen sees every access."""
