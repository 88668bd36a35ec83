"""What gunicorn serves: ``gunicorn sandbox.wsgi:application`` (one worker: state is in memory).

Daraja and the SMS simulator always; the SMTP sink too when ``SANDBOX_SMTP_PORT`` is set.
"""

from sandbox.app import create_sandbox
from sandbox.config import SimulatorConfig
from sandbox.smtp import SmtpSinkConfig

application = create_sandbox(SimulatorConfig.from_env(), SmtpSinkConfig.from_env())
