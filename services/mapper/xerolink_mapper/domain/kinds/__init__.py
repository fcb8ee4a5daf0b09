"""What each supported kind becomes in Xero, one module per family of kinds; each module's MAPPERS
says which function maps which kind."""
