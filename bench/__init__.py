"""Ting's benchmark suite: the server against the bare transport, in the same run.

`python -m bench` runs every workload of issue 4's table and prints the table;
`python -m bench --help` lists the options. See the README's "Benchmarks".
"""
