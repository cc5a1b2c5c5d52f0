#!/bin/sh
# Bascule: set up a real server of the DSR virtual service "web"
# (VIP 2001:2::100, tcp port 80). Run it as root on each
# real server: 2001:2::11, 198.18.0.12.
#
# The load balancer hands each client packet to this server unchanged but for its
# Ethernet address: the server must accept packets for the VIP and answer the client
# from it, but never answer ARP for the VIP, or clients would bypass the load balancer.
set -eu

# 1. The VIP on the loopback interface, as a host address.
ip -6 address replace 2001:2::100/128 dev lo

# 2. Nothing else: Linux answers IPv6 neighbour solicitations only for addresses
#    of the interface asked, so the VIP on lo stays quiet on the segment.

# To keep this across reboots, either
#   ifupdown, a second stanza for lo in /etc/network/interfaces:
#     iface lo inet6 static
#         address 2001:2::100/128
#   or systemd-networkd, /etc/systemd/network/10-bascule-lo.network:
#     [Match]
#     Name=lo
#     [Network]
#     Address=2001:2::100/128
