"""Venues: one package per exchange, each answering the venue boundary's questions."""
