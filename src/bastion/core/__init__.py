"""The pure exchange state machine: stdlib only, no I/O, no clock, no randomness, no floats."""
