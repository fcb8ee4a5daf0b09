"""Conversions between the v1 protobuf contract and the domain, and the gRPC servicer."""
