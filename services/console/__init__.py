"""The staff console: a server-rendered web application over the suite's gRPC services."""
