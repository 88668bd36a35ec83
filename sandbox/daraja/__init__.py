"""A Safaricom M-Pesa Daraja simulator speaking Daraja's wire format over HTTP."""

from sandbox.daraja.app import Simulator, create_app, create_simulator

__all__ = ["Simulator", "create_app", "create_simulator"]
