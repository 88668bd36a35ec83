"""The benchmark suite (``make bench``): real RabbitMQ, PostgreSQL, gunicorn and the sandbox.

Nothing here is collected by pytest (no ``test_*.py``); see docs/benchmarks.md.
"""
