"""The local runner: a Katib controller in miniature that talks to the service over gRPC."""
