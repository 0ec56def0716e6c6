"""edge-relay: a small Matrix homeserver for a box in the field."""

__version__ = "0.1.0"
