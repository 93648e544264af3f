"""Data: formats (readers + validators), mixing, built-in general and demo-domain data."""
