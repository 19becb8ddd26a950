"""CloudTally: cloud billing exports in FOCUS, exact to the cent, for FinOps and finance."""
import decimal

__version__ = "0.1.0"

# Money is DECIMAL(38,18) in the warehouse: 38 significant digits. Python's default decimal context keeps 28 and
# silently rounds a sum beyond that (e.g. 12315509505.727935425839890431 -> ...8904); every thread CloudTally
# starts from here on, and this one, add money exactly. Code that must not depend on import order uses
# decimal.localcontext(prec=MONEY_PRECISION) around its additions.
MONEY_PRECISION = 80
decimal.DefaultContext.prec = MONEY_PRECISION
decimal.getcontext().prec = MONEY_PRECISION
