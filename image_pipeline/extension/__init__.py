"""A drop-in replacement for Firebase's "Resize Images" extension (`storage-resize-images`): its rules, pure.

Standard library only: which events it processes, what it names and marks its outputs, read from its parameters.
"""
