"""A month of a law firm's Actionstep transactions, built piece by piece (see firm_generator)."""
