"""cxrbank: build, curate and train on open chest X-ray and CT collections."""

__version__ = "0.1.0"
