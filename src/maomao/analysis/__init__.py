"""Analysis of data files: pure functions over files and polars frames (compare).

Imports only the core modules (errors, models): no store, git or CLI.
"""
