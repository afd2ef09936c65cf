"""Analysis: pure functions over files, frames and series (compare, spikes).

Imports only the core modules (errors, models): no store, git or CLI.
"""
