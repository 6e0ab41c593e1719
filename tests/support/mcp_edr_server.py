"""A fake EDR MCP server (the ``mcp`` package's server): ``python mcp_edr_server.py LOG [PORT]``.

Without a port it speaks stdio; with one, streamable HTTP on 127.0.0.1. Every tool call
is appended to the file LOG, so tests can see what was really executed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("edr")
LOG = Path(sys.argv[1])


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def host_info(host: str) -> str:
    """Facts about a host: OS and owner."""
    with LOG.open("a") as log:
        log.write(f"host_info {host}\n")
    return f"{host}: windows server, owner it-ops"


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def isolate(host: str) -> str:
    """Cut a host off the network."""
    with LOG.open("a") as log:
        log.write(f"isolate {host}\n")
    return f"{host} isolated"


@server.tool()
def wipe(host: str) -> str:
    """No annotations: destructive by the MCP default."""
    with LOG.open("a") as log:
        log.write(f"wipe {host}\n")
    return "wiped"


if __name__ == "__main__":
    if len(sys.argv) > 2:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
