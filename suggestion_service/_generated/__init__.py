"""Code generated from proto/api.proto by scripts/gen_proto.py. Do not edit."""
