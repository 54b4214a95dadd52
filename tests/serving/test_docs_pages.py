"""The interactive API documentation works without internet: /docs and /redoc load
their scripts and styles from the service itself, without a key."""

import re

import pytest


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_documentation_pages_fetch_nothing_from_outside(client, page):
    client.headers.pop("X-API-Key")  # documentation needs no key
    r = client.get(page)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", r.text)
    urls += re.findall(r"""url:\\s*['"]([^'"]+)['"]""", r.text)
    assert urls and not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
    assets = [u for u in urls if u.startswith("/docs-assets/")]
    assert assets
    for url in assets:
        got = client.get(url)
        assert got.status_code == 200 and len(got.content) > 1_000, url


def test_the_swagger_ui_served_reads_openapi_3_1(client):
    version = client.get("/openapi.json").json()["openapi"]
    assert version.startswith("3.1")
    js = client.get("/docs-assets/swagger-ui-bundle.js").text
    # Swagger UI renders OpenAPI 3.1 from its version 5 on
    major = re.search(r'"(5\.\d+\.\d+)"', js)
    assert major is not None


def test_other_paths_still_need_a_key(client):
    client.headers.pop("X-API-Key")
    assert client.get("/docs-assets-not/x").status_code == 401
    assert client.get("/models").status_code == 401
