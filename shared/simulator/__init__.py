"""A local Mews Connector API: same requests, same answers, same limits, faults on demand."""
