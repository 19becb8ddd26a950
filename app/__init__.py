"""CloudTally: cloud billing exports in FOCUS, exact to the cent, for FinOps and finance."""

__version__ = "0.1.0"
