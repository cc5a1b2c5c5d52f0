"""Bascule: an open-source load balancer appliance driving HAProxy and nftables from one model."""

__version__ = "0.1.0"
