"""The poster: posts Actionstep transactions to Xero exactly once and keeps the link registry."""
