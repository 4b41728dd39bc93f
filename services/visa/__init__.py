"""ASAN Viza: electronic visas for foreign nationals, from application to the border check."""
