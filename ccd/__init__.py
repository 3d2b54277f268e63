"""ccd: a cloud call-center controller for the Asterisk PBX."""

__version__ = "0.1.0"
