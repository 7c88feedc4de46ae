"""Screens: the main window, a finding, a connection, help."""
