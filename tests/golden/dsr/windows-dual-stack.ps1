# Bascule: set up a real server of the DSR virtual service "web"
# (VIP 198.18.0.100 and 2001:2::100, tcp port 80). Run it in an elevated PowerShell on
# each real server: 198.18.0.11, 198.18.0.12.
# Every setting below persists across reboots.
#
# 0. Once, by hand: add the Microsoft KM-TEST Loopback Adapter. Device Manager > Action >
#    Add legacy hardware > Install the hardware that I manually select > Network
#    adapters > Microsoft > Microsoft KM-TEST Loopback Adapter.
$ErrorActionPreference = "Stop"

# 1. Name the adapters: the loopback adapter, and the NIC holding this server's address.
Get-NetAdapter -InterfaceDescription 'Microsoft KM-TEST Loopback Adapter*' |
    Select-Object -First 1 | Rename-NetAdapter -NewName 'loopback'
$Nic = (Get-NetIPAddress | Where-Object IPAddress -In @('198.18.0.11', '198.18.0.12') |
    Select-Object -First 1).InterfaceAlias

# 2. The VIP on the loopback adapter as a host address, never a source nor in DNS.
New-NetIPAddress -InterfaceAlias 'loopback' -IPAddress 198.18.0.100 -PrefixLength 32 -SkipAsSource $true
New-NetIPAddress -InterfaceAlias 'loopback' -IPAddress 2001:2::100 -PrefixLength 128 -SkipAsSource $true
Set-DnsClient -InterfaceAlias 'loopback' -RegisterThisConnectionsAddress $false

# 3. The weak host model: the NIC accepts packets for the VIP, and the loopback
#    adapter lets replies from the VIP leave through the NIC.
netsh interface ipv4 set interface "$Nic" weakhostreceive=enabled
netsh interface ipv4 set interface loopback weakhostreceive=enabled weakhostsend=enabled
netsh interface ipv6 set interface "$Nic" weakhostreceive=enabled
netsh interface ipv6 set interface loopback weakhostreceive=enabled weakhostsend=enabled

# 4. Let clients through the Windows Firewall to the VIP.
New-NetFirewallRule -DisplayName 'Bascule DSR web' -Direction Inbound -Protocol TCP -LocalAddress 198.18.0.100, 2001:2::100 -LocalPort '80' -Action Allow
