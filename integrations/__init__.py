"""Adapters that put the store behind the interfaces web stacks already use."""
