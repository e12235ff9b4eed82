"""Generated gRPC stubs (see generate.sh)."""
