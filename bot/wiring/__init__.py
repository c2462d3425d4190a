"""Wiring: settings, the application factory, the runner and the command line."""
