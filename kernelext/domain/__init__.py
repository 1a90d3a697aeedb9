"""The command layer every front end calls (podman's ``pkg/domain``; docs/architecture.md §1)."""
