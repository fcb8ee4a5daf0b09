"""A local emulator of the parts of the Xero Accounting API that xerolink uses."""

from xero_emulator.config import EmulatorConfig
from xero_emulator.faults import FaultRule
from xero_emulator.server import EmulatorServer

__all__ = ["EmulatorConfig", "EmulatorServer", "FaultRule"]
