"""A local exchange in its venues' wire formats (Binance USD-M futures, Binance spot,
Kraken spot WebSocket v2), generated or replayed, with fault scenarios."""
