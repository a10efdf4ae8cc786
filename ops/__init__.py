"""Offline jobs above the store: build, maintenance, backup and checks; the web service never imports them."""
