"""Scrape an admin endpoint over real HTTP and read it with prometheus-client's own parsers."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def url(address: tuple, path: str) -> str:
    host, port = address[0], address[1]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}{path}"


def get(address: tuple, path: str, accept: str | None = None) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of a GET, also for 4xx/5xx answers."""
    request = urllib.request.Request(url(address, path), headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


class Scrape:
    """The samples of one ``/metrics`` answer."""

    def __init__(self, text: str, openmetrics: bool = False) -> None:
        parse = parse_openmetrics if openmetrics else parse_prometheus
        self.text = text
        self.families = {family.name: family for family in parse(text)}
        self.samples = [sample for family in self.families.values() for sample in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
        return sum(
            s.value for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def label_values(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}


def scrape(address: tuple, openmetrics: bool = False) -> Scrape:
    status, _, body = get(address, "/metrics", OPENMETRICS if openmetrics else None)
    assert status == 200, body
    return Scrape(body, openmetrics)
