"""The OCI runtime driver: runc under conmon (and CRIU through runc)."""
