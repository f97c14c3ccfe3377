"""The CLI's command implementations, one module per area, loaded lazily by cxrbank.cli."""
