"""matrix-conduit: an efficient Matrix homeserver that is easy to set up and just works."""

__version__ = "0.1.0"
