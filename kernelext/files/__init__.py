"""Files in and out of a container root: podman cp's rules, confined path resolution, tar, deep trees."""
