"""The HA pair's VRRP: keepalived owns the VIPs of a paired node (see engine.py)."""
