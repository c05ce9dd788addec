"""Tests of the example clients (examples/), against a real running server."""
