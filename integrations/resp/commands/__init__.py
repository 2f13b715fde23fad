"""Command modules: importing this package registers every command in ``table.COMMANDS``.

One module per command group. To add a group (e.g. ``scripting``, ``hashes``), create
``commands/<group>.py`` registering its commands with ``@command`` / ``@subcommand`` and add its
name to ``MODULES``: that one line is the whole wiring.
"""

import importlib

MODULES = (
    "connection",
    "server",
    "introspection",
    "strings",
    "keys",
    "transactions",
    "scripting",
    "hashes",
    "lists",
    "sets",
    "zsets",
    "pubsub",
    "streams",
)

for _name in MODULES:
    importlib.import_module(f"{__name__}.{_name}")
