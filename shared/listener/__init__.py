"""The WebSocket listener: a long-running process (Cloud Run) that stores Mews WebSocket events."""
