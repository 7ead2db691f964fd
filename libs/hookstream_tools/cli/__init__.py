"""The ``hookstream`` command line: parses arguments and dispatches, nothing more."""
