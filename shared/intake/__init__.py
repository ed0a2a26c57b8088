"""Events in: webhooks and WebSocket frames, stored before they are acknowledged."""
