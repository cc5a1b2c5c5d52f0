#!/bin/sh
# Bascule: set up a real server of the DSR virtual service "web"
# (VIP 198.18.0.100 and 2001:2::100, tcp port 80). Run it as root on each
# real server: 198.18.0.11, 198.18.0.12.
#
# The load balancer hands each client packet to this server unchanged but for its
# Ethernet address: the server must accept packets for the VIP and answer the client
# from it, but never answer ARP for the VIP, or clients would bypass the load balancer.
set -eu

# 1. The VIP on the loopback interface, as a host address.
ip address replace 198.18.0.100/32 dev lo
# and the IPv6 VIP: Linux answers neighbour solicitations only for addresses of the
# interface asked, so it stays quiet on the segment with nothing more
ip -6 address replace 2001:2::100/128 dev lo

# 2. Answer ARP only for addresses of the interface asked (arp_ignore=1) and never
#    use the VIP as the source of ARP requests (arp_announce=2). The kernel uses the
#    higher of "all" and the interface's own value; both are set here. IFACE is the
#    interface on the load balancer's segment: the one holding this server's address.
IFACE=${IFACE:-$(for a in 198.18.0.11 198.18.0.12; do ip -o address show to "$a"; done | awk '{print $2; exit}')}
: "${IFACE:?holds none of the real server addresses: run with IFACE=<interface>}"
sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
sysctl -w "net.ipv4.conf.$IFACE.arp_ignore=1" "net.ipv4.conf.$IFACE.arp_announce=2"

# 3. rp_filter: leave it loose (2) or off (0) if replies to clients leave by another
#    interface than $IFACE; strict (1) drops the clients' packets arriving on $IFACE.
#    Check: sysctl net.ipv4.conf.all.rp_filter "net.ipv4.conf.$IFACE.rp_filter"

# To keep this across reboots:
#   /etc/sysctl.d/90-bascule-dsr.conf:
#     net.ipv4.conf.all.arp_ignore = 1
#     net.ipv4.conf.all.arp_announce = 2
#   and the VIP on lo, either with ifupdown, a second stanza for lo in
#   /etc/network/interfaces:
#     iface lo inet static
#         address 198.18.0.100/32
#     iface lo inet6 static
#         address 2001:2::100/128
#   or with systemd-networkd, /etc/systemd/network/10-bascule-lo.network:
#     [Match]
#     Name=lo
#     [Network]
#     Address=198.18.0.100/32
#     Address=2001:2::100/128
