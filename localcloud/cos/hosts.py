"""Virtual-hosted-style names: `<bucket>.cos.<region>.myqcloud.com` and `<bucket>.ci.<region>.myqcloud.com`."""
from __future__ import annotations

import re
from dataclasses import dataclass

_VIRTUAL_HOST = re.compile(
    r"^(?P<bucket>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)"
    r"\.(?P<service>cos|cos-internal|ci)"
    r"\.(?P<region>[a-z0-9-]+)"
    r"\.(?:myqcloud\.com|tencentcos\.cn)(?::\d+)?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class VirtualHost:
    service: str  # "cos" | "ci"
    bucket: str
    region: str


def parse_host(host: str) -> VirtualHost | None:
    match = _VIRTUAL_HOST.match(host.strip())
    if match is None:
        return None
    service = "ci" if match["service"].lower() == "ci" else "cos"
    return VirtualHost(service, match["bucket"].lower(), match["region"].lower())
