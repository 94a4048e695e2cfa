"""Aging evolution: pure state transitions (`population`) and the controller step against a store."""
