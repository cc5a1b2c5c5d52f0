"""conntrackd (Debian's): the HA pair's L4 flows kept across a failover (daemon/pair_state.py)."""
