"""ASAN müraciət: citizens' appeals to state bodies, on the legal clock, with open statistics."""
