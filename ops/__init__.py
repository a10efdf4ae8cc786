"""Offline jobs above the serving store (build, build on Ray, calibrate, check, backup, outliers, the
`lookalike index` commands): they use its API, never raw SQL; the web service never imports them."""
