"""The xerolink operator CLI."""
