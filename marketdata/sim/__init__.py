"""A local exchange that speaks Binance USD-M futures' wire format: generated or replayed."""
