"""A consumer service that lives in the test suite: one folder (handler, spec, migration) and one
entry-point line, to show that this is all a new service needs (tests/integration/test_service_platform.py)."""
