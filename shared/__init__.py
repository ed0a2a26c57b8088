"""Guest Data Hub domain package.

Pure core (models, mapping, scoring, rules, windows, decisions) lives beside adapters
(Mews HTTP/WebSocket client, database stores). Nothing here reads the environment or
does I/O at import time: entry points build :class:`shared.settings.Settings` and pass it down.
"""

__version__ = "0.1.0"
