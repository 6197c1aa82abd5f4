"""marketdata: exchange WebSocket feeds turned into correct order books on Redis."""

__version__ = "0.1.0"
