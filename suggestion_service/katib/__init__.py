"""The Katib adapter: the only code that touches generated protobuf messages."""
