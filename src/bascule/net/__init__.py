"""Low-level networking both the engines and the health checker use (see docs/architecture.md).

Pure, no I/O (values in, values out): ``addresses`` (how an address and a port are written),
``checksum`` (the Internet checksum), ``icmp`` (ICMP echo messages), ``frames`` (Ethernet,
ARP, IPv4, TCP and ICMP frames) and ``iproute`` (what ``ip -j`` prints, as values). The one
shell: ``shell`` (commands run through a ``Runner``, and ``Ip``, the iproute2 runner).
"""
