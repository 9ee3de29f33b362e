"""Test support outside the package: process control for the servers the tests start."""
