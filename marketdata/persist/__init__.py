"""`marketdata persist`: drains the Redis Stream spool into TimescaleDB and MongoDB."""
