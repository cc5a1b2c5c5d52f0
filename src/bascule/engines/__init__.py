"""Engines: the data planes Bascule drives (HAProxy for L7, later nftables for L4).

Each engine knows the model, never another engine; the daemon drives them through the
contract in base.py.
"""
