"""Pieces shared by the xerolink services: errors, money, and the gRPC server bootstrap."""
