"""Annotation parsing: strict validation, typed values, Events for invalid or unknown ones."""
from __future__ import annotations

import pytest

from nanokube.ingress.annotations import parse

P = "nginx.ingress.kubernetes.io/"


@pytest.mark.parametrize("name,value,expected", [
    ("ssl-redirect", "false", False), ("ssl-redirect", "True", True),
    ("force-ssl-redirect", "1", True),
    ("proxy-body-size", "8m", "8m"), ("proxy-body-size", "0", "0"), ("proxy-body-size", "1G", "1g"),
    ("proxy-read-timeout", "120", 120), ("proxy-send-timeout", "5", 5),
    ("backend-protocol", "https", "HTTPS"), ("backend-protocol", "HTTP", "HTTP"),
    ("whitelist-source-range", "10.0.0.0/8, 192.168.1.7,::1", ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]),
    ("rewrite-target", "/$2", "/$2"), ("rewrite-target", "/api/$1/x", "/api/$1/x"),
    ("use-regex", "true", True),
])
def test_valid(name, value, expected):
    settings, problems = parse({P + name: value})
    assert problems == [] and settings[name] == expected


@pytest.mark.parametrize("name,value", [
    ("ssl-redirect", "yes"), ("proxy-body-size", "8mb"), ("proxy-body-size", "1m; evil"),
    ("proxy-body-size", "-1"), ("proxy-read-timeout", "1.5"), ("proxy-read-timeout", "60s"),
    ("proxy-send-timeout", "9999999999"), ("backend-protocol", "GRPC"),
    ("whitelist-source-range", "10.0.0.0/33"), ("whitelist-source-range", "all; allow all"),
    ("whitelist-source-range", ""), ("rewrite-target", "/$host"), ("rewrite-target", "/a;b"),
    ("rewrite-target", "/$10"), ("rewrite-target", "relative"), ("rewrite-target", '/"x'),
    ("affinity", "ip"), ("session-cookie-name", "a-b"), ("use-regex", "maybe"),
    ("proxy-read-timeout", "1\n}"),
])
def test_invalid_values_are_ignored_with_a_problem(name, value):
    settings, problems = parse({P + name: value})
    assert name not in settings
    assert [r for r, _ in problems] == ["InvalidAnnotation"]


def test_unknown_annotation_reported_other_prefixes_silently_ignored():
    settings, problems = parse({P + "configuration-snippet": "return 200;",
                                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                                P + "proxy-body-size": "2m"})
    assert settings == {"proxy-body-size": "2m"}
    assert [r for r, _ in problems] == ["UnknownAnnotation"]


def test_affinity_cookie_default_name():
    assert parse({P + "affinity": "cookie"})[0] == {"affinity": "cookie",
                                                    "session-cookie-name": "INGRESSCOOKIE"}
    assert parse({P + "affinity": "cookie", P + "session-cookie-name": "route"})[0][
        "session-cookie-name"] == "route"
