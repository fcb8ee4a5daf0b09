"""The emulated organisation: objects, Xero's status rules, validation and totals. Nothing here
knows about HTTP."""
