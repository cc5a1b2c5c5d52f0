"""Direct Server Return help: what a real server needs, and a check of it on the wire.

Pure: ``target`` (the operating systems scripts are written for), ``script`` + ``templates/``
(the real-server scripts of ``bascule dsr script``), ``probe`` (the test packet of ``bascule
dsr verify`` and what an answer means), ``report`` (the verdicts). The shell: ``verify``
(ARP and a test connection on a packet socket, and the machine's facts through net's ``Ip``).
See docs/architecture.md for why this package sits beside the engines.
"""
