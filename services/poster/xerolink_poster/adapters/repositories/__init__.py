"""One repository per aggregate, each on the unit of work's session (service_layer/ports.py
holds their interfaces)."""
