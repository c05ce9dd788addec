"""Pure computation: no storage, no web, no network, no clock reads."""
