"""The Firebase "Resize Images" extension (storage-resize-images) as a route: its parameters, names and rules."""
