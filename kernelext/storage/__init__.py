"""Storage: images as read-only lower layers, one overlay upper layer per container."""
