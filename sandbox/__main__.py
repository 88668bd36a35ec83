"""``python -m sandbox --port 8900``."""

from sandbox.cli import sandbox

sandbox(prog_name="python -m sandbox")
