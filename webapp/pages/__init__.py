"""The web pages (one blueprint per area), a thin layer over engine functions."""
