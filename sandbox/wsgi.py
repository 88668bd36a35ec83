"""What gunicorn serves: ``gunicorn sandbox.wsgi:application`` (one worker: state is in memory)."""

from sandbox.config import SimulatorConfig
from sandbox.daraja.app import create_app

application = create_app(SimulatorConfig.from_env())
