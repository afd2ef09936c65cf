"""The node as a daemon: a supervisor runs presence, the outbox, the API server (and, in
later capabilities, the scheduler and watchers) as tasks of one process."""
