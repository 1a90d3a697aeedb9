"""The lifecycle core: libpod's container API on runc, conmon and overlayfs."""
