"""Test fixtures that are real parts: fake sysfs trees written by real processes."""
