"""The client's address: the socket peer, unless a trusted proxy vouches for another."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: list[IPv4Network | IPv6Network]
) -> str | None:
    """Walk ``X-Forwarded-For`` from the right while each hop is a trusted proxy.

    Only a request whose socket peer is a trusted proxy has its header believed;
    the first address (from the right) that is not a trusted proxy is the client.
    """
    if peer is None or not _trusted(peer, trusted) or not forwarded_for:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        try:
            ip_address(hop)
        except ValueError:
            return client  # a garbled hop: stop at the last address we could trust
        client = hop
        if not _trusted(hop, trusted):
            return hop
    return client


def _trusted(address: str, trusted: list[IPv4Network | IPv6Network]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted)
