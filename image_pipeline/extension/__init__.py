"""The Resize Images extension's behaviour, for routes that replace it. Standard library only."""
