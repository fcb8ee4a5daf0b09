"""Plain-Python rules of the poster: link states and their transitions, content fingerprints,
dependency resolution, rate-limit budgets, batching and retry timing, unlinking and corrections.
Nothing here imports grpc, SQL or generated protobuf code (lint-imports checks it)."""
