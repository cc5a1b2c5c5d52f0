"""The adaptive agent poller: fetch each real server's load over HTTP (the I/O of adaptive.py).

``GET http://<real server>:<adaptive.port><adaptive.url>``, as LoadMaster's adaptive
scheduler does; the body's first line is read by ``adaptive.parse_agent_answer``. A server that
does not answer in time, refuses, or answers with an HTTP error gives an ``AgentReading`` of
verdict ``no_answer`` with the reason, never an exception: one broken agent must not stop the
others' polling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import httpx

from bascule.health.adaptive import AgentReading, AgentVerdict, parse_agent_answer
from bascule.net.addresses import host_port

MAX_BODY = 4096


def agent_url(address: str, port: int, path: str) -> str:
    return f"http://{host_port(address, port)}{path}"


async def fetch_load(client: httpx.AsyncClient, url: str) -> AgentReading:
    """One poll of one agent."""
    try:
        response = await client.get(url)
    except httpx.TimeoutException:
        return AgentReading(verdict=AgentVerdict.no_answer, detail="timed out")
    except httpx.HTTPError as exc:
        return AgentReading(verdict=AgentVerdict.no_answer, detail=_short(exc))
    if response.status_code != 200:
        return AgentReading(verdict=AgentVerdict.no_answer, detail=f"HTTP {response.status_code}")
    return parse_agent_answer(response.text[:MAX_BODY])


async def poll_agents(
    urls: Iterable[tuple[str, str]], *, wait: float
) -> Mapping[str, AgentReading]:
    """Poll every ``(key, url)`` concurrently, each given ``wait`` seconds; a reading per key."""
    pairs = list(urls)
    if not pairs:
        return {}
    # No proxy from the environment: agents sit on the real servers' network, next to us.
    async with httpx.AsyncClient(timeout=wait, trust_env=False) as client:
        readings = await asyncio.gather(*(fetch_load(client, url) for _, url in pairs))
    return {key: reading for (key, _), reading in zip(pairs, readings, strict=True)}


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."
