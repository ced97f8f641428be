"""Test-session setup shared by every test directory."""

from threadpoolctl import threadpool_limits

# The service pins BLAS to one thread (see server.py); in-process core tests do the same, so
# they measure what the service runs and do not thrash the two shared cores.
threadpool_limits(limits=1, user_api="blas")
