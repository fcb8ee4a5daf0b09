"""The xerolink mapper: decides whether an Actionstep transaction is supported and what it becomes in Xero."""
