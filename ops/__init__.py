"""Offline jobs above the serving store (build, calibrate, check, backup): its API, never raw SQL."""
