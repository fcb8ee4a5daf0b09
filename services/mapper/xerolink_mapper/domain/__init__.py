"""Pure mapping logic: no grpc, no protobuf, no I/O."""
