"""Plain-Python rules of the poster: link states and their transitions, content fingerprints,
dependency resolution, rate-limit budgets, batching and retry timing. Nothing here imports grpc
or SQL."""
