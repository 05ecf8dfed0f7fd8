"""The fleet simulator (`batm-sim fleet`): thousands of protocol-level terminals in one process.

  mqtt        a minimal asyncio MQTT 3.1.1 client (TLS, QoS 1): one per simulated terminal
"""
