"""Bastion: a deterministic perpetual-futures exchange (see docs/ and DESIGN.md)."""

__version__ = "0.1.0"
