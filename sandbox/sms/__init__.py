"""An SMS provider simulator speaking Africa's Talking's messaging wire format over HTTP."""

from sandbox.sms.app import SmsSimulator, create_sms_simulator

__all__ = ["SmsSimulator", "create_sms_simulator"]
