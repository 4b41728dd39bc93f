"""The benchmark (`make bench`, bench/run.py) as a tool: it starts, measures, prints and cleans up."""
