"""The WebSocket listener: a long-running process (Cloud Run) holding one Mews WebSocket per
active connection and storing their events."""
