"""cxrbank test suite."""
