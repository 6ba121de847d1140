"""Local stand-ins for the cloud services the function talks to (never deployed)."""
