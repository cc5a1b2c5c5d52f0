"""The nftables engine (L4 NAT and DSR): maglev + view (decisions as nft JSON) -> engine."""
